import Foundation
import Logging

/// Partial archives (`.<archive name>.partial`, see `StackBackupSteps`) that dead runs left behind.
enum PartialArchives {
    /// Removes the partial archives of `stack` in `directory` last modified more than `seconds` ago, logging each.
    /// Call it holding the stack's lock: then no live run of this stack writes one, and a live run of it would
    /// renew its file far more often than the lease (the age only guards against clocks and other hosts sharing
    /// the directory). Returns the removed paths.
    @discardableResult
    static func removeStale(in directory: String, stack: String, olderThan seconds: Double, logger: Logger,
                            now: Date = Date()) -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var removed: [String] = []
        for file in files where file.hasPrefix(".") && file.hasSuffix(".partial") {
            let name = String(file.dropFirst().dropLast(".partial".count))
            guard ArchiveName.parse(name)?.stack == stack else { continue }
            let path = "\(directory)/\(file)"
            guard let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date,
                  now.timeIntervalSince(modified) > seconds
            else { continue }
            do {
                try FileManager.default.removeItem(atPath: path)
                removed.append(path)
                let message = "removed the partial archive \(path) of a dead run of stack \(stack) (last written "
                    + "\(modified.iso8601))"
                logger.warning("\(message)")
            } catch {
                logger.warning("could not remove the partial archive \(path) of a dead run: \(error)")
            }
        }
        return removed
    }
}
