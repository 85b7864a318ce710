import Foundation

/// Reading the archive's own documents: the index (first entry) and the manifest (last entry).
extension Verification {
    mutating func readIndex(_ data: Data) {
        guard hasReadableVersion(data, name: ArchiveIndex.entryName, document: "index",
                                 current: ArchiveIndex.currentFormatVersion) else { return }
        do {
            let index = try ArchiveIndex(jsonData: data)
            self.index = index
            for component in index.components {
                let parts = ArchivePath.components(Array(component.archivePath.utf8))
                if let problem = ArchivePath.problem(Array(component.archivePath.utf8)) {
                    problems.append("the index lists the component path '\(component.archivePath)', which \(problem)")
                    continue
                }
                if actuals[component.archivePath] != nil {
                    problems.append("the index lists '\(component.archivePath)' twice")
                    continue
                }
                var actual = Actual(kind: component.kind, parts: parts)
                if checksums {
                    switch component.kind {
                    case .tree: actual.treeChecksum = TreeChecksum()
                    case .file: actual.fileChecksum = XXH3()
                    }
                }
                actuals[component.archivePath] = actual
                roots.append((component.archivePath, parts))
            }
            roots.sort { $0.parts.count > $1.parts.count }
        } catch {
            problems.append("\(ArchiveIndex.entryName) is unreadable: \(error)")
        }
    }

    mutating func readManifest(_ data: Data) {
        guard hasReadableVersion(data, name: Manifest.entryName, document: "manifest",
                                 current: Manifest.currentFormatVersion) else { return }
        do {
            manifest = try Manifest(jsonData: data)
        } catch {
            problems.append("\(Manifest.entryName) is unreadable: \(error)")
        }
    }

    /// True when the document `name` (the `document` for messages) declares the format version `current`;
    /// otherwise records the problem.
    mutating func hasReadableVersion(_ data: Data, name: String, document: String, current: Int) -> Bool {
        guard let version = formatVersion(of: data, name: name) else { return false }
        guard version == current else {
            problems.append(
                "the \(document) has format version \(version); this stackvault reads version \(current) "
                    + "(use a newer stackvault)"
            )
            return false
        }
        return true
    }

    mutating func formatVersion(of data: Data, name: String) -> Int? {
        struct Probe: Decodable { var formatVersion: Int }
        do {
            return try JSONDecoder().decode(Probe.self, from: data).formatVersion
        } catch {
            problems.append("\(name) is not valid JSON with a formatVersion: \(error)")
            return nil
        }
    }
}
