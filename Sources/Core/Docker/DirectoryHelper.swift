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

    public init(docker: any DockerEngine, image: HelperImage, container: ContainerDetails, place: String) {
        self.docker = docker
        self.image = image
        self.container = container
        self.place = place
    }

    /// What the helper reported (the JSON line `stackvault helper` ends its stderr with).
    public struct Summary: Sendable, Equatable {
        public var skippedSockets: Int
        public var skippedSocketPaths: [String]
        public var warnings: [String]
        /// Bytes of regular files (`dataBytes`): what `size` measured, or what a copy read.
        public var dataBytes: Int64 = 0
    }

    /// Streams the PAX tar of `path` (top entry `<basename>/`) into `sink`.
    public func read(_ path: String, into sink: any ByteSink) async throws -> Summary {
        try await run(["tar-create", path], path: path, writable: false, stdin: nil, stdout: sink,
                      doing: "read \(path)")
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
        let advice = Self.advice(for: image)
        do {
            code = try await docker.runHelper(spec, stdin: stdin, stdout: stdout, stderr: stderr)
        } catch let error as StackVaultError where error.code == .cancelled {
            throw error
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            // Stopped (SIGTERM/SIGINT) while the helper streamed: say so, the helper image is not at fault.
            if Task.isCancelled {
                throw StackVaultError(.cancelled, "stopped (SIGTERM/SIGINT) while a helper container was to \(doing) "
                    + "of \(place); the helper was removed")
            }
            // Docker gone (dockerd stopped or restarting) is not the image's fault: no advice about it.
            let gone = (error as? StackVaultError)?.code == .dockerUnreachable
            throw StackVaultError(
                gone ? .dockerUnreachable : .dockerAPI,
                "could not \(doing) of \(place) through a helper container from the image \(image): \(error)"
                    + (gone ? "" : "; " + advice))
        }
        let text = stderr.text
        let lines = text.split(separator: "\n").map(String.init)
        guard code == 0 else {
            let said = lines.suffix(3).joined(separator: " / ")
            let how = code == 137 ? "was killed (exit code 137: docker kill, or out of memory)"
                : code == 127 || code == 126 ? "could not run stackvault (exit code \(code))"
                : "failed (exit code \(code))"
            throw StackVaultError(
                .dockerAPI,
                "the helper container that was to \(doing) of \(place) \(how)"
                    + (said.isEmpty ? "" : ": \(said)") + "; "
                    + (code == 137 ? "run it again" : advice))
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
            dataBytes: (object["dataBytes"] as? NSNumber)?.int64Value ?? 0)
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
