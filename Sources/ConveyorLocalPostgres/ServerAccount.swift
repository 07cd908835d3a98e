import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The operating-system account the server programs run as.
///
/// PostgreSQL refuses to run as root, so when this process is root, `initdb`, `pg_ctl` and `postgres` run as the
/// `postgres` user through `runuser -u postgres --`, and cluster directories are handed to that user. Otherwise
/// everything runs as the current user and nothing changes hands.
struct ServerAccount: Sendable {
    /// The `postgres` user to switch to, when running as root.
    struct SwitchedUser: Sendable {
        var name: String
        var uid: uid_t
        var gid: gid_t
        var groups: [gid_t]
        var runuser: String
    }

    /// The user server programs switch to, or `nil` when they run as the current user.
    let switchedUser: SwitchedUser?

    /// The account for this process: the `postgres` user when running as root.
    /// - Throws: `POSTGRES_USER_MISSING` when running as root without a `postgres` user or `runuser`.
    static func current() throws -> ServerAccount {
        guard geteuid() == 0 else {
            return ServerAccount(switchedUser: nil)
        }
        let name = "postgres"
        guard let entry = getpwnam(name) else {
            throw LocalPostgresError(
                code: .postgresUserMissing,
                message: "running as root, but PostgreSQL refuses to run as root and there is no `postgres` user to "
                    + "run it as; create one with `useradd --system --user-group postgres` or run as a regular user"
            )
        }
        let runuserPaths = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser", "/bin/runuser"]
        guard let runuser = runuserPaths.first(where: FileManager.default.isExecutableFile(atPath:)) else {
            throw LocalPostgresError(
                code: .postgresUserMissing,
                message: "running as root, but `runuser` (util-linux) is missing, so the server cannot be run as the "
                    + "`postgres` user; install util-linux or run as a regular user"
            )
        }
        let uid = entry.pointee.pw_uid
        let gid = entry.pointee.pw_gid
        return ServerAccount(
            switchedUser: SwitchedUser(
                name: name,
                uid: uid,
                gid: gid,
                groups: groups(of: name, primary: gid),
                runuser: runuser
            )
        )
    }

    /// A command that runs `executable` as this account, from `workingDirectory` (which must be reachable by it).
    func command(_ executable: String, _ arguments: [String], workingDirectory: String) -> Command {
        guard let switchedUser else {
            return Command(executable, arguments, workingDirectory: workingDirectory)
        }
        return Command(
            switchedUser.runuser,
            ["-u", switchedUser.name, "--", executable] + arguments,
            workingDirectory: workingDirectory
        )
    }

    /// Makes `paths` belong to this account (`chown`), when running as root; does nothing otherwise.
    func takeOwnership(of paths: [String]) throws {
        guard let switchedUser else { return }
        for path in paths where chown(path, switchedUser.uid, switchedUser.gid) != 0 {
            let reason = String(cString: strerror(errno))
            throw LocalPostgresError(
                code: .directoryNotAccessible,
                message: "could not hand \(path) to the `postgres` user (chown: \(reason)); "
                    + "use a directory on a file system that supports ownership, such as one under /tmp",
                details: reason
            )
        }
    }

    /// Checks that this account can search every directory from `/` down to `directory`'s parent, judging by
    /// permission bits (ACLs are not consulted).
    /// - Throws: `DIRECTORY_NOT_ACCESSIBLE` naming the first directory it cannot pass through.
    func checkCanReach(_ directory: String) throws {
        guard let switchedUser else { return }
        var ancestor = "/"
        let components = (directory as NSString).pathComponents.dropFirst().dropLast()
        for component in [""] + components {
            ancestor = (ancestor as NSString).appendingPathComponent(component)
            var status = stat()
            guard stat(ancestor, &status) == 0 else { continue }
            let mode = status.st_mode
            let searchable: Bool
            if status.st_uid == switchedUser.uid {
                searchable = mode & S_IXUSR != 0
            } else if switchedUser.groups.contains(status.st_gid) {
                searchable = mode & S_IXGRP != 0
            } else {
                searchable = mode & S_IXOTH != 0
            }
            guard searchable else {
                throw LocalPostgresError(
                    code: .directoryNotAccessible,
                    message: "the `postgres` user, which runs the server because this process is root, cannot reach "
                        + "\(directory): \(ancestor) is not searchable by it; run `chmod o+x \(ancestor)` or choose "
                        + "a directory elsewhere (e.g. under /tmp)"
                )
            }
        }
    }

    /// The groups `name` belongs to, including `primary`.
    private static func groups(of name: String, primary: gid_t) -> [gid_t] {
        #if canImport(Glibc) || canImport(Musl)
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(name, primary, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(count))
            guard getgrouplist(name, primary, &groups, &count) >= 0 else { return [primary] }
        }
        return Array(groups.prefix(Int(count)))
        #else
        return [primary]
        #endif
    }
}
