import Foundation

/// What a verification found: per component for the writer, as a report for everyone.
extension Verification {
    /// What the component at `archivePath` read back to so far; nil when the index does not list it.
    func readBack(_ archivePath: String) -> ReadBack? {
        guard let actual = actuals[archivePath] else { return nil }
        return ReadBack(
            sha256: actual.kind == .file ? actual.file.finalize().hex : actual.tree.finalize().hex,
            checksum: actual.kind == .file ? actual.fileChecksum?.finalize() : actual.treeChecksum?.finalize(),
            sizeBytes: actual.sizeBytes,
            entries: actual.entries
        )
    }

    /// The report, with the outcome of decompressing the whole file.
    func report(decompressed: Result<Int64, any Error>) -> VerificationReport {
        var report = report()
        switch decompressed {
        case .success(let bytes):
            report.compressedBytes = bytes
        case .failure(let error):
            report.problems.insert("the compressed data is damaged or incomplete: \(error)", at: 0)
        }
        return report
    }

    func report() -> VerificationReport {
        var report = VerificationReport()
        report.index = index
        report.manifest = manifest
        report.problems = problems
        report.notes = notes
        report.entries = entries
        if tailBytes > 0 {
            for (path, actual) in actuals where actual.kind == .file && actual.entries > 0 {
                report.fileTails[path] = actual.tail
            }
        }
        if !manifestSeen {
            report.problems.append("the archive has no manifest (\(Manifest.entryName)): it is incomplete")
        }
        guard let manifest else { return report }

        if let index, index.stack != manifest.stack {
            report.problems.append(
                "the index is for the stack '\(index.stack)' but the manifest for '\(manifest.stack)'"
            )
        }
        var listed = Set<String>()
        for component in manifest.components {
            listed.insert(component.archivePath)
            let actual = actuals[component.archivePath]
            if actual == nil && index != nil {
                report.problems.append("the manifest lists '\(component.archivePath)', which the index does not")
            }
            let actualSHA: String?
            switch actual {
            case .none: actualSHA = nil
            case .some(let actual) where actual.entries == 0: actualSHA = nil
            case .some(let actual):
                actualSHA = actual.kind == .file ? actual.file.finalize().hex : actual.tree.finalize().hex
            }
            let result = VerificationReport.ComponentResult(
                archivePath: component.archivePath,
                kind: component.kind,
                expectedSHA256: component.sha256,
                actualSHA256: actualSHA,
                expectedSizeBytes: component.sizeBytes,
                actualSizeBytes: actual?.sizeBytes ?? 0,
                expectedEntries: component.entries,
                actualEntries: actual?.entries ?? 0
            )
            if actual?.kind != nil && actual?.kind != component.kind {
                report.problems.append(
                    "'\(component.archivePath)' is a \(component.kind.rawValue) in the manifest but not in the index"
                )
            }
            if actualSHA == nil {
                report.problems.append("the component '\(component.archivePath)' is missing from the archive")
            } else if !result.ok {
                report.problems.append(
                    "the component '\(component.archivePath)' does not match the manifest: sha256 "
                        + "\(actualSHA ?? "-") (expected \(component.sha256)), \(result.actualSizeBytes) bytes "
                        + "(expected \(component.sizeBytes)), \(result.actualEntries) entries "
                        + "(expected \(component.entries))"
                )
            }
            report.components.append(result)
        }
        for component in index?.components ?? [] where !listed.contains(component.archivePath) {
            let partial = actuals[component.archivePath]?.entries ?? 0
            report.notes.append(
                "the component '\(component.archivePath)' of service '\(component.service)' is in the index but not "
                    + "in the manifest: its backup did not complete"
                    + (partial > 0 ? " (\(partial) partial entries are in the archive)" : "")
            )
        }
        return report
    }
}
