import Foundation

/// The image that helper containers (the directory reader and writer of `volume-path`) are made from, and why.
///
/// A helper runs StackVault's own binary (`stackvault helper tar-create|tar-extract`), so the image must hold it:
/// - `override`: `STACKVAULT_HELPER_IMAGE` names it; its entrypoint must be `stackvault`. (`none` turns helpers
///   off: every directory then goes through the archive API.)
/// - `ownContainer`: StackVault runs in a container; its image is used, entrypoint = the binary's path in it.
/// - `built`: StackVault runs on the host; an image of its binary plus the shared libraries it links (as `ldd`
///   lists them, the dynamic loader included) is imported on first use (`POST /images/create?fromSrc=-`, no
///   registry), tagged `stackvault-helper:<version>-<12 hex of the binary's XXH3>` so that an upgrade builds anew.
/// - `unavailable`: none of these could be had; directories are then copied through the archive API, which loses
///   extended attributes, ACLs and holes.
public enum HelperImage: Sendable, Equatable, CustomStringConvertible {
    case override(image: String)
    case ownContainer(image: String, container: String, binary: String)
    /// `present` is false when the image is still to be imported (what `plan` shows; the first copy imports it).
    case built(image: String, binary: String, present: Bool)
    case unavailable(reason: String)

    /// The environment variable that names the helper image.
    public static let environmentKey = "STACKVAULT_HELPER_IMAGE"
    /// The repository of built helper images.
    public static let repository = "stackvault-helper"
    /// Label of every helper container: the name of the container it serves.
    public static let containerLabel = "stackvault.helper"
    /// Where the binary lies in a built image.
    public static let builtBinary = "/stackvault"

    /// The image reference, nil when unavailable.
    public var image: String? {
        switch self {
        case .override(let image), .ownContainer(let image, _, _), .built(let image, _, _): image
        case .unavailable: nil
        }
    }

    /// The entrypoint a helper gets: the binary's path, or nil to keep the image's own (an override).
    public var entrypoint: [String]? {
        switch self {
        case .ownContainer(_, _, let binary), .built(_, let binary, _): [binary]
        case .override, .unavailable: nil
        }
    }

    /// For `plan`: `stackvault-helper:0.1.0-abc (built from this binary and imported)`.
    public var description: String {
        switch self {
        case .override(let image): "\(image) (set by \(Self.environmentKey))"
        case .ownContainer(let image, let container, _):
            "\(image.hasPrefix("sha256:") ? String(image.prefix(19)) : image) (the image of StackVault's own "
                + "container \(container.prefix(12)))"
        case .built(let image, _, let present):
            "\(image) (built from this StackVault binary and its libraries, "
                + (present ? "imported)" : "to be imported on first use)")
        case .unavailable(let reason): "none: \(reason)"
        }
    }

    /// The tag of the built image for a binary of `version` whose content hashes to `hash`.
    static func builtTag(version: String, hash: UInt64) -> String {
        let hex = String(hash, radix: 16)
        let padded = String(repeating: "0", count: max(0, 16 - hex.count)) + hex
        return "\(repository):\(version)-\(padded.prefix(12))"
    }

    /// The shared objects in `ldd` output: `name => /path (0x...)` lines and the loader's `/path (0x...)` line;
    /// `linux-vdso.so.1` (in the kernel) has no path and is left out. Throws on `not found` lines.
    static func libraries(fromLdd output: String) throws -> [String] {
        var paths: [String] = []
        for raw in output.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.contains("=> not found") {
                throw StackVaultError(.invalidConfiguration, "a library of the StackVault binary is missing: \(line)")
            }
            var candidate = line
            if let arrow = line.range(of: "=> ") { candidate = String(line[arrow.upperBound...]) }
            guard candidate.hasPrefix("/") else { continue }
            let path = candidate.split(separator: " ", maxSplits: 1).first.map(String.init) ?? candidate
            if !paths.contains(path) { paths.append(path) }
        }
        return paths
    }
}
