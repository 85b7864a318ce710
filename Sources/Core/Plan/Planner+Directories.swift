import Foundation

extension Planner {
    /// Looks every directory of `plan` up in its container (Docker's path stat, which sees the container's mounts
    /// and works while it is stopped): a path that is missing or not a directory is an error of its service naming
    /// the label, the service and the container; a symbolic link is resolved (whole chain, inside the container)
    /// and the directory it leads to is what gets copied (`ComponentSpec.resolvedPath`). Also says which helper
    /// image directory copies use, and warns for each directory copied through the archive API instead.
    func checkDirectories(_ plan: BackupPlan, containers: [ContainerDetails]) async -> BackupPlan {
        var plan = plan
        let copies = plan.stacks.flatMap(\.services).flatMap(\.components)
            .filter { $0.requirement == .stopped && $0.spec.path != nil }
        guard !copies.isEmpty else { return plan }
        let helper = await docker.helperImage(build: false)
        plan.helperImage = helper.description
        for s in plan.stacks.indices {
            for v in plan.stacks[s].services.indices {
                var service = plan.stacks[s].services[v]
                let mounts = containers.first { $0.id == service.containerID }?.mounts ?? []
                for c in service.components.indices {
                    let component = service.components[c]
                    guard component.requirement == .stopped, let path = component.spec.path else { continue }
                    let label = component.strategy.matchesKeyPrefix
                        ? component.strategy.labelKey + (component.spec.name ?? "") : component.strategy.labelKey
                    let culprit = "label \(label)=\(path) of service \(service.service) (container \(service.container))"
                    switch await resolve(path, in: service.containerID) {
                    case .failure(let problem):
                        service.errors.append("\(culprit): \(problem)")
                    case .success(let resolved):
                        var spec = component.spec
                        spec.resolvedPath = resolved == path ? nil : resolved
                        service.components[c] = PlannedComponent(spec: spec, strategy: component.strategy)
                        // A symbolic link can lead to a directory with mounts in it (`/data/out -> /etc`): the
                        // directory it leads to is checked as a labelled one is.
                        if resolved != path, let container = containers.first(where: { $0.id == service.containerID }) {
                            var target = spec
                            target.path = resolved
                            if let problem = Self.mountProblem([target], label: BackupLabel(key: label, value: path),
                                                               service: service.service, container: container) {
                                service.errors.append(problem)
                            }
                        }
                        if case .archiveAPI(let why) = DirectoryCopy.choose(path: resolved, mounts: mounts,
                                                                            helper: helper) {
                            service.warnings.append("\(label): \(why)")
                        }
                    }
                }
                plan.stacks[s].services[v] = service
            }
        }
        return plan
    }

    /// The directory `path` leads to in the container, or why it is not one.
    private func resolve(_ path: String, in container: String) async -> Result<String, PathProblem> {
        do {
            guard let stat = try await docker.statPath(in: container, path: path) else {
                return .failure(PathProblem("\(path) does not exist in the container; create the directory or "
                    + "correct the label"))
            }
            if stat.isDirectory { return .success(path) }
            guard stat.isSymlink, let target = stat.linkTarget else {
                return .failure(PathProblem("\(path) is not a directory; label a directory"))
            }
            guard let resolved = try await docker.statPath(in: container, path: target) else {
                return .failure(PathProblem("\(path) is a symbolic link to \(target), which does not exist in the "
                    + "container; create it or correct the label"))
            }
            guard resolved.isDirectory, target != "/" else {
                return .failure(PathProblem("\(path) is a symbolic link to \(target), which is not a directory "
                    + "below /; label a directory"))
            }
            return .success(target)
        } catch {
            return .failure(PathProblem("cannot look \(path) up in the container: \(error)"))
        }
    }
}

/// Why a labelled path cannot be copied.
struct PathProblem: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
