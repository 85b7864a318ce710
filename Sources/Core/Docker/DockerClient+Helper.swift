import Foundation
import Synchronization

extension DockerClient {
    // MARK: - Paths

    public func statPath(in container: String, path: String) async throws -> ContainerPathStat? {
        let response = try await raw(
            "HEAD", "/containers/\(percentEncode(container))/archive?path=\(percentEncode(path))", timeout: 60)
        if response.status == 404 { return nil }
        guard response.status == 200 else {
            throw daemonError(response, doing: "look up \(path) in container \(container)")
        }
        guard let encoded = response.head.headers["x-docker-container-path-stat"],
            let json = Data(base64Encoded: encoded),
            let object = try? JSONSerialization.jsonObject(with: json) as? [String: Any]
        else {
            throw StackVaultError(.dockerAPI, "Docker's answer about \(path) in container \(container) has no "
                + "readable X-Docker-Container-Path-Stat header")
        }
        return Self.pathStat(fromJSON: object)
    }

    /// Docker's path stat (`{"name","size","mode","mtime","linkTarget"}`, `mode` a Go `os.FileMode`: directory
    /// bit 1<<31, symlink bit 1<<27).
    static func pathStat(fromJSON object: [String: Any]) -> ContainerPathStat {
        let mode = (object["mode"] as? NSNumber)?.uint64Value ?? 0
        let isSymlink = mode & (1 << 27) != 0
        let target = (object["linkTarget"] as? String).flatMap { $0.isEmpty ? nil : $0 }
        return ContainerPathStat(isDirectory: mode & (1 << 31) != 0, isSymlink: isSymlink,
                                 linkTarget: isSymlink ? target : nil)
    }

    // MARK: - Helper containers

    public func runHelper(
        _ spec: ContainerCreateSpec,
        stdin: (@Sendable (any ByteSink) throws -> Void)?,
        stdout: any ByteSink,
        stderr: any ByteSink
    ) async throws -> Int {
        var spec = spec
        spec.openStdin = stdin != nil
        spec.noLogs = true
        let id: String
        do {
            id = try await createContainer(spec)
        } catch {
            // A built image that someone removed is looked up (and built) again by the next copy.
            resolvedHelperImage.withLock { known in
                if case .built = known { known = nil }
            }
            throw error
        }
        let remove: @Sendable () async -> Void = { [self] in try? await removeContainer(id, force: true) }
        do {
            let code = try await attachStartAndWait(id, name: spec.name ?? id, stdin: stdin, stdout: stdout,
                                                    stderr: stderr)
            await Task.detached(operation: remove).value
            return code
        } catch {
            // Detached: a cancelled task must still remove its helper.
            await Task.detached(operation: remove).value
            throw error
        }
    }

    private func attachStartAndWait(
        _ id: String,
        name: String,
        stdin: (@Sendable (any ByteSink) throws -> Void)?,
        stdout: any ByteSink,
        stderr: any ByteSink
    ) async throws -> Int {
        let version = try await apiVersion()
        let query = "stream=1&stdout=1&stderr=1" + (stdin != nil ? "&stdin=1" : "")
        let endpoint = self.endpoint
        let what = "the helper container \(name)"
        let connection = try await runBlocking { _ in
            try DockerAttachConnection(endpoint: endpoint, path: "/v\(version)/containers/\(id)/attach?\(query)",
                                       what: what)
        }
        let demuxer = DockerStreamDemuxer(stdout: stdout, stderr: stderr)
        let transfer = UnsafeTransfer(demuxer)
        let writeError = Mutex<(any Error)?>(nil)
        let writerDone = DispatchSemaphore(value: 0)
        try await withTaskCancellationHandler {
            try await startContainer(id)
            // Like `docker run -a`: attached first (the daemon answered), started second, so no output is lost.
            if let stdin {
                let writer = Thread { [self] in
                    do {
                        try stdin(AttachStdinSink(connection: connection))
                        connection.closeWriting()
                    } catch {
                        writeError.withLock { $0 = error }
                        if error is AttachWriteError {
                            connection.closeWriting()
                        } else {
                            // The producer failed: the helper must not see a clean end of its input (it could
                            // take a truncated stream for a whole one), so it is killed before the connection
                            // closes.
                            let kill: @Sendable () async -> Void = { try? await self.removeContainer(id, force: true) }
                            let done = DispatchSemaphore(value: 0)
                            Task.detached {
                                await kill()
                                done.signal()
                            }
                            done.wait()
                            connection.abort()
                        }
                    }
                    writerDone.signal()
                }
                writer.name = "stackvault-helper-stdin"
                writer.start()
            }
            try await runBlocking { _ in try connection.readAll(into: transfer.value) }
            if stdin != nil {
                connection.abort()  // unblocks a writer the helper stopped reading from
                try await runBlocking { _ in writerDone.wait() }
            }
        } onCancel: {
            connection.abort()
        }
        if let error = writeError.withLock({ $0 }), !(error is AttachWriteError) { throw error }
        if Task.isCancelled || (stdin == nil && connection.isAborted) {
            throw StackVaultError(.cancelled, "the run of \(what) was cancelled")
        }
        let code = try await waitForExit(id, what: what)
        guard demuxer.isAtFrameBoundary else {
            throw StackVaultError(.dockerAPI, "the output of \(what) ended in the middle of a frame")
        }
        if code == 0, let error = writeError.withLock({ $0 }) { throw error }
        return code
    }

    /// `POST /containers/{id}/wait`: the exit code once the container is not running.
    private func waitForExit(_ id: String, what: String) async throws -> Int {
        let response = try await request("POST", "/containers/\(percentEncode(id))/wait", timeout: 300,
                                         doing: "wait for \(what)")
        let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] ?? [:]
        guard let code = (object["StatusCode"] as? NSNumber)?.intValue else {
            throw StackVaultError(.dockerAPI, "Docker did not say how \(what) exited")
        }
        return code
    }

    // MARK: - Helper image

    public func helperImage(build: Bool) async -> HelperImage {
        if let known = resolvedHelperImage.withLock({ $0 }) { return known }
        let resolved = await resolveHelperImage(build: build)
        if case .built(_, _, false) = resolved { return resolved }
        resolvedHelperImage.withLock { $0 = resolved }
        return resolved
    }

    private func resolveHelperImage(build: Bool) async -> HelperImage {
        if let override = helperImageOverride {
            return override == "none"
                ? .unavailable(reason: "\(HelperImage.environmentKey)=none turns helper containers off")
                : .override(image: override)
        }
        let binary: String
        do {
            binary = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        } catch {
            return .unavailable(reason: "the path of the running binary is unknown (/proc/self/exe: \(error))")
        }
        guard (binary as NSString).lastPathComponent == "stackvault" else {
            return .unavailable(reason: "this process (\(binary)) is not the stackvault binary")
        }
        if let own = HolderIdentity.ownContainerID() {
            do {
                let response = try await request("GET", "/containers/\(own)/json", timeout: 60,
                                                 doing: "inspect StackVault's own container")
                let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any] ?? [:]
                if let image = object["Image"] as? String, !image.isEmpty {
                    return .ownContainer(image: image, container: own, binary: binary)
                }
            } catch {
                return .unavailable(reason: "StackVault runs in container \(own.prefix(12)), which Docker could not "
                    + "inspect: \(error)")
            }
        }
        do {
            let tag = HelperImage.builtTag(version: StackVault.version, hash: try await Self.hashFile(binary))
            if try await imageExists(tag) { return .built(image: tag, binary: HelperImage.builtBinary, present: true) }
            guard build else { return .built(image: tag, binary: HelperImage.builtBinary, present: false) }
            try await buildHelperImage(tag, binary: binary)
            return .built(image: tag, binary: HelperImage.builtBinary, present: true)
        } catch {
            return .unavailable(reason: "no helper image could be built from \(binary): \(error)")
        }
    }

    private static func hashFile(_ path: String) async throws -> UInt64 {
        try await runBlocking { _ in
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                throw StackVaultError(.io, "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            defer { close(fd) }
            var hash = XXH3()
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
            defer { buffer.deallocate() }
            while true {
                let count = try FileDescriptorIO.read(fd, into: buffer, what: path)
                if count == 0 { return hash.finalize() }
                hash.update(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
            }
        }
    }

    /// Imports the image `tag`: `binary` as `/stackvault` plus every shared object `ldd` lists for it, at the
    /// paths the binary looks for them.
    private func buildHelperImage(_ tag: String, binary: String) async throws {
        let ldd = Process()
        ldd.executableURL = URL(fileURLWithPath: "/usr/bin/ldd")
        ldd.arguments = [binary]
        let pipe = Pipe()
        ldd.standardOutput = pipe
        ldd.standardError = FileHandle.nullDevice
        try ldd.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        ldd.waitUntilExit()
        guard ldd.terminationStatus == 0 else {
            throw StackVaultError(.io, "ldd \(binary) failed (exit code \(ldd.terminationStatus))")
        }
        let libraries = try HelperImage.libraries(fromLdd: String(decoding: output, as: UTF8.self))
        let files = [(name: String(HelperImage.builtBinary.dropFirst()), source: binary)]
            + libraries.map { (name: String($0.dropFirst()), source: $0) }
        let temporary = FileManager.default.temporaryDirectory
            .appendingPathComponent("stackvault-helper-image-\(UUID().uuidString.prefix(8)).tar").path
        defer { try? FileManager.default.removeItem(atPath: temporary) }
        try await runBlocking { _ in
            guard FileManager.default.createFile(atPath: temporary, contents: nil) else {
                throw StackVaultError(.io, "cannot create \(temporary)")
            }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
            defer { try? handle.close() }
            try TarStream.writeHostFiles(files, into: FileHandleSink(handle: handle))
        }
        let changes = ["ENTRYPOINT [\"\(HelperImage.builtBinary)\"]", "LABEL \(HelperImage.containerLabel).image=1"]
            .map { "changes=" + percentEncode($0) }.joined(separator: "&")
        let (repository, version) = (HelperImage.repository, String(tag.dropFirst(HelperImage.repository.count + 1)))
        let reader = try FileHandle(forReadingFrom: URL(fileURLWithPath: temporary))
        defer { try? reader.close() }
        let source = UnsafeTransfer(reader)
        let request = try await makeRequest(
            "POST", "/images/create?fromSrc=-&repo=\(repository)&tag=\(percentEncode(version))&\(changes)",
            headers: [("Content-Type", "application/x-tar")],
            stream: { buffer in
                let data = try source.value.read(upToCount: buffer.count) ?? Data()
                data.copyBytes(to: buffer)
                return data.count
            }, timeout: 600)
        let response = try await http.send(request)
        // Errors of an import come inside a 200 response's JSON stream.
        guard response.status == 200, !response.bodyText.contains("\"error") else {
            throw daemonError(response, doing: "import the helper image \(tag)")
        }
    }
}

/// The stdin of an attached helper: bytes go to the hijacked connection.
private final class AttachStdinSink: ByteSink {
    let connection: DockerAttachConnection

    init(connection: DockerAttachConnection) {
        self.connection = connection
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        do {
            try connection.write(bytes)
        } catch {
            throw AttachWriteError(underlying: error)
        }
    }
}

/// Writing a helper's stdin failed on the connection (the helper ended or was killed): its exit code says more.
struct AttachWriteError: Error, CustomStringConvertible {
    var underlying: any Error
    var description: String { "\(underlying)" }
}

/// Appends to a file handle.
private final class FileHandleSink: ByteSink {
    let handle: FileHandle
    init(handle: FileHandle) { self.handle = handle }
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        try handle.write(contentsOf: Data(bytes))
    }
}
