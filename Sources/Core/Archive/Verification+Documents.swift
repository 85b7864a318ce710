import Foundation

/// Reading the archive's own documents: the index (first entry) and the manifest (last entry).
extension Verification {
    mutating func readIndex(_ data: Data) {
        guard let version = formatVersion(of: data, name: ArchiveIndex.entryName) else { return }
        guard version == ArchiveIndex.currentFormatVersion else {
            problems.append(
                "the index has format version \(version); this stackvault reads version "
                    + "\(ArchiveIndex.currentFormatVersion) (use a newer stackvault)"
            )
            return
        }
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
        guard let version = formatVersion(of: data, name: Manifest.entryName) else { return }
        guard version == Manifest.currentFormatVersion else {
            problems.append(
                "the manifest has format version \(version); this stackvault reads version "
                    + "\(Manifest.currentFormatVersion) (use a newer stackvault)"
            )
            return
        }
        do {
            manifest = try Manifest(jsonData: data)
        } catch {
            problems.append("\(Manifest.entryName) is unreadable: \(error)")
        }
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
