import Foundation

/// How a directory of a container is copied: through a helper container running StackVault's own tar, or through
/// Docker's archive API (the fallback, which loses extended attributes, ACLs and holes).
public enum DirectoryCopy: Sendable, Equatable {
    /// A helper container from this image, with the target's mounts (`--volumes-from`).
    case helper(HelperImage)
    /// The archive API; `why` says why not a helper, and what that loses.
    case archiveAPI(why: String)

    /// What the archive API loses, for warnings.
    public static let archiveAPILoss = "Docker's archive API, which loses extended attributes, POSIX ACLs and holes "
        + "(sparse files are read as zeros and restored at full size)"

    /// The method for the directory `path` (absolute, resolved) given the container's mounts and the helper image:
    /// a helper when the path is on a volume or bind mount and an image is at hand; otherwise the archive API.
    public static func choose(path: String, mounts: [ContainerMount], helper: HelperImage) -> DirectoryCopy {
        let onMount = mounts.contains {
            $0.type != "tmpfs" && ($0.destination == path || ContainerMount.isPath(path, below: $0.destination))
        }
        guard onMount else {
            return .archiveAPI(why: "\(path) is in the container's own layer (on no volume or bind mount), so it is "
                + "copied through \(archiveAPILoss)")
        }
        guard helper.image != nil else {
            return .archiveAPI(why: "no helper image can be had (\(helper)), so \(path) is copied through "
                + archiveAPILoss)
        }
        return .helper(helper)
    }
}

/// A short-lived helper container that reads or replaces one directory of a target container with StackVault's
/// own tar (`stackvault helper tar-create|tar-extract <dir>`, libarchive: xattrs, ACLs, sparse files, hard links,
/// long paths). It mounts the target's volumes and bind mounts (`--volumes-from`, read-only for reading; this
/// works while the target is stopped), has no network, drops every capability but those its job needs, logs
/// nothing, carries the label `stackvault.helper=<target name>`, and is removed on every path (`runHelper`).
///
/// Reading needs `DAC_READ_SEARCH` (root reads files and directories whatever their modes). Writing needs
/// `CHOWN` (owners), `FOWNER` (modes, times, ACLs and xattrs of files it does not own), `FSETID` (set-id bits
/// kept), `DAC_OVERRIDE` and `DAC_READ_SEARCH` (any directory), `MKNOD` (device nodes), `SETFCAP`
/// (`security.capability`).
public struct DirectoryHelper: Sendable {
    public static let readCapabilities = ["DAC_READ_SEARCH"]
    public static let writeCapabilities = ["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "MKNOD",
                                           "SETFCAP"]

    public let docker: any DockerEngine
    public let image: HelperImage
    public let container: ContainerDetails
    /// For messages: `service files (container app-files-1) of stack app`.
    public let place: String
    /// How `read` gets the tar stream; by default from ``HelperChannel/environmentKey``.
    public var channel: HelperChannel?
    /// Seconds a side-channel helper that runs but has not connected is waited for before it is removed:
    /// `STACKVAULT_HELPER_CONNECT_TIMEOUT` (for tests), else 120.
    var connectTimeout: Double = ProcessInfo.processInfo.environment["STACKVAULT_HELPER_CONNECT_TIMEOUT"]
        .flatMap(Double.init).flatMap { $0 > 0 ? $0 : nil } ?? 120

    public init(docker: any DockerEngine, image: HelperImage, container: ContainerDetails, place: String,
                channel: HelperChannel? = nil) {
        self.docker = docker
        self.image = image
        self.container = container
        self.place = place
        self.channel = channel
    }

    /// What the helper reported (the JSON line `stackvault helper` ends its stderr with).
    public struct Summary: Sendable, Equatable {
        public var skippedSockets: Int
        public var skippedSocketPaths: [String]
        public var warnings: [String]
        /// Bytes of regular files (`dataBytes`): what `size` measured, or what a copy read.
        public var dataBytes: Int64 = 0
        /// Bytes of the tar stream (`tarBytes`), as the helper counted them.
        public var tarBytes: Int64 = 0
        /// For `read`: why the tar came through Docker's attach stream rather than the side channel; nil when it
        /// came through the side channel (and for `size` and `write`, which always use the attach stream).
        public var attachReason: String?
    }

    /// Streams the PAX tar of `path` (top entry `<basename>/`) into `sink`: through the side channel
    /// (``HelperChannel/sideChannel(networkMode:)``) when it can be had, else through the helper's stdout on
    /// Docker's attach stream (the summary's `attachReason` says why).
    public func read(_ path: String, into sink: any ByteSink) async throws -> Summary {
        let doing = "read \(path)"
        let reason: String
        switch try channel ?? HelperChannel.fromEnvironment(ProcessInfo.processInfo.environment) {
        case .attach:
            reason = "\(HelperChannel.environmentKey)=attach"
        case .sideChannel(let mode):
            switch try await readThroughSideChannel(path, networkMode: mode ?? defaultNetworkMode, into: sink,
                                                    doing: doing) {
            case .read(let summary): return summary
            case .unavailable(let why): reason = why
            }
        }
        var summary = try await run(["tar-create", path], path: path, writable: false, stdin: nil, stdout: sink,
                                    doing: doing)
        summary.attachReason = reason
        return summary
    }

    /// StackVault's network namespace as a helper's `NetworkMode`: its container's, or the host's.
    private var defaultNetworkMode: String {
        if case .ownContainer(_, let own, _) = image { return "container:\(own)" }
        return HolderIdentity.ownContainerID().map { "container:\($0)" } ?? "host"
    }

    private enum SideChannelRead {
        case read(Summary)
        /// The side channel could not be had, and nothing was written to the sink: use the attach stream.
        case unavailable(String)
    }

    /// `read` through a ``HelperSideChannel``: the helper (in `networkMode`) connects and writes the tar there while
    /// its stdout stays empty; its exit code and summary are checked as on the attach stream, and the bytes
    /// received must be the summary's `tarBytes`.
    private func readThroughSideChannel(
        _ path: String, networkMode: String, into sink: any ByteSink, doing: String
    ) async throws -> SideChannelRead {
        let channel: HelperSideChannel
        do {
            channel = try HelperSideChannel()
        } catch {
            return .unavailable("the side channel could not be made: \(error)")
        }
        var helperSpec = spec(["tar-create", path, "--connect", channel.name], writable: false)
        helperSpec.networkDisabled = false
        helperSpec.networkMode = networkMode
        helperSpec.environment = ["\(HelperSideChannel.tokenVariable)=\(channel.token)"]
        let spec = helperSpec
        let stdout = CollectingSink(limit: 4096)
        let stderr = TailCollectingSink(limit: 64 << 10)
        let (docker, timeout, target) = (docker, connectTimeout, UnsafeTransfer(sink))
        enum Outcome: Sendable {
            case helper(Result<Int, any Error>)
            /// Bytes received; nil when the helper never connected.
            case stream(Result<Int64?, any Error>)
        }
        var helper: Result<Int, any Error>?
        var stream: Result<Int64?, any Error>?
        await withTaskGroup(of: Outcome.self) { group in
            group.addTask {
                defer { channel.helperEnded() }
                do {
                    return .helper(.success(try await docker.runHelper(spec, stdin: nil, stdout: stdout,
                                                                       stderr: stderr)))
                } catch {
                    return .helper(.failure(error))
                }
            }
            group.addTask {
                do {
                    let received = try await withTaskCancellationHandler {
                        try await runBlocking { flag -> Int64? in
                            guard try channel.accept(timeout: timeout, flag: flag) else { return nil }
                            return try channel.receive(into: target.value)
                        }
                    } onCancel: {
                        channel.abort()
                    }
                    return .stream(.success(received))
                } catch {
                    channel.abort()  // the helper's next write fails at once
                    return .stream(.failure(error))
                }
            }
            for await outcome in group {
                switch outcome {
                case .helper(let result):
                    helper = result
                case .stream(let result):
                    stream = result
                    // A sink that failed, or a helper that never connected: the helper is stopped and removed.
                    if case .failure = result { group.cancelAll() }
                }
            }
        }
        guard let helper, let stream else { preconditionFailure("both tasks report") }
        let received: Int64?
        switch stream {
        case .failure(let error as SideChannelTimeout):
            if Task.isCancelled { throw failure(CancellationError(), doing: doing) }
            throw StackVaultError(
                .dockerAPI,
                "the helper container that was to \(doing) of \(place) did not connect to StackVault's side channel "
                    + "within \(Int(error.seconds)) s (network mode \(networkMode)) and was removed; run it again, or "
                    + "set \(HelperChannel.environmentKey)=attach to copy through Docker's attach stream")
        case .failure(let error):
            throw failure(error, doing: doing)
        case .success(let count):
            received = count
        }
        let code: Int
        switch helper {
        case .failure(let error):
            if received == nil && !Task.isCancelled {
                return .unavailable("a helper in network mode \(networkMode) could not be run: \(error)")
            }
            throw failure(error, doing: doing)
        case .success(let exit):
            code = exit
        }
        if received == nil && code == Int(HelperSideChannel.unreachableExitCode) {
            let said = stderr.text.split(separator: "\n").last.map(String.init) ?? ""
            return .unavailable("the helper (network mode \(networkMode)) could not reach the side channel: \(said)")
        }
        let summary = try summary(code: code, stderr: stderr, doing: doing)
        guard let received, received == summary.tarBytes else {
            throw StackVaultError(
                .dockerAPI,
                "the helper container that was to \(doing) of \(place) sent \(received ?? 0) bytes of its "
                    + "\(summary.tarBytes)-byte tar stream on StackVault's side channel; run it again")
        }
        return .read(summary)
    }

    /// Measures `path` without reading its files (`stackvault helper size`, ``DirectorySize``): the summary's
    /// `dataBytes` is the bytes of its regular files, the estimate of what a copy of it reads.
    public func size(_ path: String) async throws -> Summary {
        try await run(["size", path], path: path, writable: false, stdin: nil, stdout: CollectingSink(limit: 4096),
                      doing: "measure \(path)")
    }

    /// Replaces the content of `path` with the tar stream `body` writes (top entry: the directory itself).
    public func write(_ path: String, body: @escaping @Sendable (any ByteSink) throws -> Void) async throws
        -> Summary
    {
        try await run(["tar-extract", path], path: path, writable: true, stdin: body, stdout: CollectingSink(limit: 4096),
                      doing: "restore \(path)")
    }

    /// The container spec for `arguments` (`tar-create /data`).
    func spec(_ arguments: [String], writable: Bool) -> ContainerCreateSpec {
        ContainerCreateSpec(
            name: "stackvault-helper-\(UUID().uuidString.prefix(8).lowercased())",
            image: image.image ?? "", entrypoint: image.entrypoint ?? [], command: ["helper"] + arguments, user: "0",
            labels: [HelperImage.containerLabel: container.name]
                .merging(HolderIdentity.current().labels(prefix: StackLocker.makerLabel)) { $1 },
            volumesFrom: ["\(container.id):\(writable ? "rw" : "ro")"], networkDisabled: true,
            capDrop: ["ALL"], capAdd: writable ? Self.writeCapabilities : Self.readCapabilities, noLogs: true)
    }

    private func run(
        _ arguments: [String],
        path: String,
        writable: Bool,
        stdin: (@Sendable (any ByteSink) throws -> Void)?,
        stdout: any ByteSink,
        doing: String
    ) async throws -> Summary {
        let spec = spec(arguments, writable: writable)
        let stderr = TailCollectingSink(limit: 64 << 10)
        let code: Int
        do {
            code = try await docker.runHelper(spec, stdin: stdin, stdout: stdout, stderr: stderr)
        } catch {
            throw failure(error, doing: doing)
        }
        return try summary(code: code, stderr: stderr, doing: doing)
    }

    /// The error for a helper run that failed with `error` (cancellation kept as such).
    private func failure(_ error: any Error, doing: String) -> any Error {
        if let error = error as? StackVaultError, error.code == .cancelled { return error }
        if error is CancellationError { return CancellationError() }
        // Stopped (SIGTERM/SIGINT) while the helper streamed: say so, the helper image is not at fault.
        if Task.isCancelled {
            return StackVaultError(.cancelled, "stopped (SIGTERM/SIGINT) while a helper container was to \(doing) "
                + "of \(place); the helper was removed")
        }
        // Docker gone (dockerd stopped or restarting) is not the image's fault: no advice about it.
        let gone = (error as? StackVaultError)?.code == .dockerUnreachable
        return StackVaultError(
            gone ? .dockerUnreachable : .dockerAPI,
            "could not \(doing) of \(place) through a helper container from the image \(image): \(error)"
                + (gone ? "" : "; " + Self.advice(for: image)))
    }

    /// The helper's summary from its exit code and the end of its stderr; throws for a failed helper.
    private func summary(code: Int, stderr: TailCollectingSink, doing: String) throws -> Summary {
        let advice = Self.advice(for: image)
        let text = stderr.text
        let lines = text.split(separator: "\n").map(String.init)
        guard code == 0 else {
            let said = lines.suffix(3).joined(separator: " / ")
            let how = code == 137 ? "was killed (exit code 137: docker kill, or out of memory)"
                : code == 127 || code == 126 ? "could not run stackvault (exit code \(code))"
                : "failed (exit code \(code))"
            // Exit 1 with its own `stackvault: ...` line: the helper ran and says what went wrong and what to do;
            // the image is not at fault.
            let ownError = code == 1 && lines.last?.hasPrefix("stackvault: ") == true
            throw StackVaultError(
                .dockerAPI,
                "the helper container that was to \(doing) of \(place) \(how)"
                    + (said.isEmpty ? "" : ": \(said)")
                    + (ownError ? "" : "; " + (code == 137 ? "run it again" : advice)))
        }
        guard let last = lines.last, let object = try? JSONSerialization.jsonObject(with: Data(last.utf8))
            as? [String: Any]
        else {
            throw StackVaultError(
                .dockerAPI,
                "the helper container that was to \(doing) of \(place) ended without its summary (the stream may be "
                    + "incomplete): \(lines.suffix(2).joined(separator: " / ")); " + advice)
        }
        return Summary(
            skippedSockets: (object["skippedSockets"] as? NSNumber)?.intValue ?? 0,
            skippedSocketPaths: object["skippedSocketPaths"] as? [String] ?? [],
            warnings: object["warnings"] as? [String] ?? [],
            dataBytes: (object["dataBytes"] as? NSNumber)?.int64Value ?? 0,
            tarBytes: (object["tarBytes"] as? NSNumber)?.int64Value ?? 0)
    }

    /// What to do when the helper image does not work.
    static func advice(for image: HelperImage) -> String {
        switch image {
        case .override:
            "set \(HelperImage.environmentKey) to an image whose entrypoint is a stackvault of this version (or "
                + "unset it to let StackVault choose)"
        case .built(let name, _, _):
            "remove the image (docker rmi \(name)) so that StackVault builds it again, or set "
                + "\(HelperImage.environmentKey)"
        default:
            "check that Docker can create containers from \(image.image ?? "the image"), or set "
                + HelperImage.environmentKey
        }
    }
}

/// How a helper container's tar stream reaches StackVault for a backup (``DirectoryHelper/read(_:into:)``).
public enum HelperChannel: Sendable, Equatable {
    /// An abstract Unix socket StackVault listens on (``HelperSideChannel``), the helper started with the
    /// `NetworkMode` given (nil: StackVault's own network namespace, `container:<StackVault's container>` or
    /// `host`). Falls back to `attach` when the socket cannot be made, the helper cannot be created with that
    /// network mode (user namespaces, rootless Docker) or cannot reach the socket.
    case sideChannel(networkMode: String?)
    /// The helper's stdout through Docker's attach stream (dockerd and containerd-shim in between: several times
    /// slower for large volumes).
    case attach

    /// `STACKVAULT_HELPER_CHANNEL`: unset or `auto` (the side channel, with the fallback), `attach`, or
    /// `network:<mode>` (the side channel with that `NetworkMode`; for diagnostics and tests).
    public static let environmentKey = "STACKVAULT_HELPER_CHANNEL"

    /// The channel `environment` asks for; throws for a value that is none of the above.
    public static func fromEnvironment(_ environment: [String: String]) throws -> HelperChannel {
        switch environment[environmentKey] ?? "" {
        case "", "auto": return .sideChannel(networkMode: nil)
        case "attach": return .attach
        case let value where value.hasPrefix("network:") && value.count > "network:".count:
            return .sideChannel(networkMode: String(value.dropFirst("network:".count)))
        case let value:
            throw StackVaultError(.invalidConfiguration, "\(environmentKey)=\(value) is not a helper channel; use "
                + "auto (the default), attach, or network:<Docker network mode>")
        }
    }
}
