import Foundation
import Logging

/// Removes ephemeral clusters whose owning process died without stopping them.
///
/// Every directory directly inside the ephemeral base that has an `owner.pid` naming a process that no longer
/// runs gets `pg_ctl stop -m immediate` (failures ignored) and is then deleted. Directories without `owner.pid`
/// are never touched.
struct StaleClusterReaper: Sendable {
    let base: String
    let binaries: LocalPostgres.Binaries
    let account: ServerAccount
    let logger: Logger

    /// Stops and deletes every stale cluster in `base`. Two starts in this process never sweep the same directory
    /// at once.
    func reap() async {
        let registry = ClusterRegistry.shared
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
        for entry in entries.sorted() {
            let layout = ClusterLayout(directory: (base as NSString).appendingPathComponent(entry))
            guard let owner = ClusterOwner.read(from: layout.ownerFile),
                !owner.isAlive(isCurrentProcessAlive: registry.isClaimed(layout.directory)),
                registry.beginSweep(layout.directory)
            else {
                continue
            }
            defer { registry.endSweep(layout.directory) }
            logger.notice("removing stale PostgreSQL cluster \(layout.directory) left by dead process \(owner.pid)")
            if FileManager.default.fileExists(atPath: layout.postmasterPIDFile) {
                let control = ServerControl(binaries: binaries, account: account, layout: layout, logger: logger)
                let outcome = await control.stopCommand(mode: .immediate).run(logger: logger)
                if !outcome.succeeded {
                    logger.debug("pg_ctl stop on stale cluster \(layout.directory): \(outcome.diagnostics)")
                }
            }
            do {
                try FileManager.default.removeItem(atPath: layout.directory)
            } catch {
                // Another process may be sweeping the same directory; only a directory left behind matters.
                if FileManager.default.fileExists(atPath: layout.directory) {
                    logger.warning("could not remove stale PostgreSQL cluster \(layout.directory): \(error)")
                }
            }
        }
    }
}
