import Foundation
import Model

/// A folder one run or job owns while it works on it: an advisory lock on `.ptune.lock`
/// (`flock`, released by the kernel when the process ends, however it ends), refused while
/// another process holds it. Once held, what dead writers left (temporary files, half-written
/// adapter and registry folders) is removed: no live process can still be writing them.
public final class RunFolder {
    public let path: String
    private let descriptor: Int32

    /// The name of the lock file inside a run folder.
    public static let lockName = ".ptune.lock"

    /// Creates `path` when missing and takes its lock; `what` names the owner in messages ("run", "job").
    public init(claiming path: String, for what: String) throws {
        self.path = path
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw InputError(path, "cannot create the \(what) folder (\(error.localizedDescription))")
        }
        let lockPath = path + "/" + Self.lockName
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw InputError(lockPath, "cannot open (\(String(cString: strerror(errno))))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: lockPath, encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw InputError(path, "another \(what) is using this folder (\(holder.isEmpty ? "lock held" : holder)); "
                             + "wait for it to end or choose another --out")
        }
        descriptor = fd
        let owner = "pid \(getpid()) on \(ProcessInfo.processInfo.hostName)\n"
        _ = ftruncate(fd, 0)
        _ = owner.withCString { pwrite(fd, $0, strlen($0), 0) }
        Self.removeLeftovers(in: path)
    }

    deinit { close(descriptor) }

    /// Whether `path` exists with anything in it but a lock file.
    public static func holdsFiles(_ path: String) -> Bool {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        return names.contains { $0 != lockName }
    }

    /// Temporary files of `writeAtomically` (`.NAME.tmp-PID`) and staging folders of adapters and
    /// registries (`NAME.partial-PID`, `NAME.old-PID`) that a killed process left.
    static func removeLeftovers(in path: String) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        for name in names where name.contains(".tmp-") || name.contains(".partial-") || name.contains(".old-") {
            try? FileManager.default.removeItem(atPath: path + "/" + name)
        }
    }
}
