import Foundation

/// The Swarm endpoints of the Engine API (docs.docker.com/reference/api/engine, "Service", "Task", "System info").
extension DockerClient {
    public func swarmNode() async throws -> SwarmNode {
        let response = try await request("GET", "/info", timeout: 30, doing: "report its swarm state (GET /info)")
        let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] ?? [:]
        let swarm = object["Swarm"] as? [String: Any] ?? [:]
        return SwarmNode(state: swarm["LocalNodeState"] as? String ?? "inactive",
                         isManager: swarm["ControlAvailable"] as? Bool ?? false,
                         nodeID: swarm["NodeID"] as? String ?? "")
    }

    public func listServices(labelFilters: [String]) async throws -> [SwarmService] {
        let filters = try JSONSerialization.data(withJSONObject: ["label": labelFilters])
        let query = "filters=" + percentEncode(String(decoding: filters, as: UTF8.self))
        let response = try await request("GET", "/services?\(query)", timeout: 60, doing: "list the swarm services")
        let rows = try JSONSerialization.jsonObject(with: Data(response.body)) as? [[String: Any]] ?? []
        return try rows.map(Self.service(from:))
    }

    public func inspectService(_ idOrName: String) async throws -> SwarmService {
        try Self.service(from: try await serviceObject(idOrName))
    }

    public func listTasks(serviceID: String) async throws -> [SwarmTask] {
        let filters = try JSONSerialization.data(withJSONObject: ["service": [serviceID]])
        let query = "filters=" + percentEncode(String(decoding: filters, as: UTF8.self))
        let response = try await request("GET", "/tasks?\(query)", timeout: 60,
                                         doing: "list the tasks of service \(serviceID)")
        let rows = try JSONSerialization.jsonObject(with: Data(response.body)) as? [[String: Any]] ?? []
        return rows.map { row in
            let status = row["Status"] as? [String: Any] ?? [:]
            let containerStatus = status["ContainerStatus"] as? [String: Any] ?? [:]
            return SwarmTask(id: row["ID"] as? String ?? "", slot: row["Slot"] as? Int,
                             nodeID: row["NodeID"] as? String ?? "",
                             desiredState: row["DesiredState"] as? String ?? "",
                             state: status["State"] as? String ?? "",
                             containerID: (containerStatus["ContainerID"] as? String).flatMap { $0.isEmpty ? nil : $0 },
                             error: (status["Err"] as? String).flatMap { $0.isEmpty ? nil : $0 })
        }
    }

    public func scaleService(_ id: String, replicas: Int, labels: [String: String?]) async throws {
        // The update replaces the whole spec at a version: read it, change two fields, send it back. Another update
        // in between makes the daemon answer "update out of sequence"; read again and retry.
        for attempt in 1...5 {
            let object = try await serviceObject(id)
            guard var spec = object["Spec"] as? [String: Any],
                let version = (object["Version"] as? [String: Any])?["Index"] as? Int
            else {
                throw StackVaultError(.dockerAPI, "GET /services/\(id) gave no Spec or Version.Index")
            }
            var mode = spec["Mode"] as? [String: Any] ?? [:]
            guard var replicated = mode["Replicated"] as? [String: Any] else {
                throw StackVaultError(.dockerAPI, "service \(spec["Name"] as? String ?? id) is not replicated "
                    + "(mode \(mode.keys.sorted().joined(separator: ","))) and cannot be scaled")
            }
            replicated["Replicas"] = replicas
            mode["Replicated"] = replicated
            spec["Mode"] = mode
            var specLabels = spec["Labels"] as? [String: String] ?? [:]
            for (key, value) in labels { specLabels[key] = value }
            spec["Labels"] = specLabels
            let body = try JSONSerialization.data(withJSONObject: spec)
            let response = try await raw("POST", "/services/\(percentEncode(id))/update?version=\(version)",
                                         body: body, timeout: 60)
            if (200..<300).contains(response.status) { return }
            let error = daemonError(response, doing: "scale service \(spec["Name"] as? String ?? id) to \(replicas)")
            guard attempt < 5, response.bodyText.contains("out of sequence") else { throw error }
            try await Task.sleep(for: .milliseconds(200 * attempt))
        }
    }

    private func serviceObject(_ idOrName: String) async throws -> [String: Any] {
        let response = try await request("GET", "/services/\(percentEncode(idOrName))", timeout: 60,
                                         doing: "inspect service \(idOrName)")
        return try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] ?? [:]
    }

    /// A `SwarmService` from one object of `GET /services` or `GET /services/{id}`.
    static func service(from object: [String: Any]) throws -> SwarmService {
        guard let id = object["ID"] as? String, let spec = object["Spec"] as? [String: Any] else {
            throw StackVaultError(.dockerAPI, "the Docker daemon described a service without ID or Spec")
        }
        let modeObject = spec["Mode"] as? [String: Any] ?? [:]
        let mode: SwarmService.Mode
        if let replicated = modeObject["Replicated"] as? [String: Any] {
            mode = .replicated(replicated["Replicas"] as? Int ?? 1)
        } else if modeObject["Global"] != nil {
            mode = .global
        } else {
            mode = .other(modeObject.keys.sorted().first ?? "unknown")
        }
        return SwarmService(id: id, name: spec["Name"] as? String ?? id,
                            labels: spec["Labels"] as? [String: String] ?? [:], mode: mode)
    }
}
