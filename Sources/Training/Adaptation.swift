import Crypto
import Distributed
import Foundation
import Model
import Tasks
import Tuning

/// Per-task adaptation, the tasks side by side: the ranks split into `groups`
/// (`MPI_Comm_split`), each group trains one task at a time data-parallel and takes the next
/// when done, and the coordinator (world rank 0) collects every task's best adapter and
/// metrics from the group that trained it and writes the adapter registry.
///
/// Tasks are handed out largest training file first; a group's root takes the next one from a
/// counter on world rank 0 (one-sided, so no rank waits for another to hand it out), which
/// balances groups whatever the tasks' speeds turn out to be.
///
/// With `resume`, a task whose run finished (its `summary.json` exists) is not trained again
/// and one with a checkpoint continues from it, so a job that lost a rank reruns with `--resume`
/// and redoes only what was lost (the run folders must then be where every group sees them).
public final class Adaptation {
    public let world: Communicator
    public let groups: Int
    public let out: String
    public let resume: Bool
    private let stage: String

    /// - Parameter stage: named at the start of every log line (the pipeline runs two adaptations).
    public init(world: Communicator, groups: Int, out: String, resume: Bool = false, stage: String = "") throws {
        self.resume = resume
        self.stage = stage.isEmpty ? "" : stage + " "
        guard groups >= 1 else { throw InputError("--groups", "must be at least 1, not \(groups)") }
        guard groups <= world.size else {
            throw InputError("--groups", "\(groups) groups need at least \(groups) ranks, and this job has \(world.size)")
        }
        self.world = world
        self.groups = groups
        self.out = out
    }

    /// The order tasks are handed out: largest training file first (ties in the given order).
    public func handOutOrder(_ tasks: [String]) -> [Int] {
        let sizes = tasks.map { spec -> Int in
            let train = (try? TaskSpec(contentsOf: spec))?.splits["train"] ?? ""
            return ((try? FileManager.default.attributesOfItem(atPath: train))?[.size] as? Int) ?? 0
        }
        return tasks.indices.sorted { (sizes[$0], $1) > (sizes[$1], $0) }
    }

    /// Trains every task (settings from `settings(task spec)`) into `out/runs/<name>/`, then writes
    /// `out/registry/` on rank 0. Returns each task's summary, on every rank.
    @discardableResult
    public func run(tasks: [String], runName: String = "runs", settings: (String) -> TrainingSettings) throws -> [[String: Any]] {
        let names = try world.agreed(Result { () -> [String] in
            let specs = try tasks.map { try TaskSpec(contentsOf: $0) }
            try specs.checkNamesUnique()
            return specs.map(\.name)
        })
        // The job folder's lock, on the coordinator: a second job on the same --out stops here.
        let lock = try world.agreed(Result { world.isRoot ? try RunFolder(claiming: out, for: "job") : nil })
        defer { withExtendedLifetime(lock) {} }
        let color = world.rank % groups
        let group = world.split(color: color, key: world.rank)
        let order = handOutOrder(tasks)
        let counter = world.makeCounter()
        if counter == nil && world.isRoot {
            let note = "\(world.logPrefix)no one-sided MPI window between these hosts: tasks are dealt to the groups in turn\n"
            FileHandle.standardError.write(Data(note.utf8))
        }
        var mine: [[String: Any]] = []
        for round in 0... {
            // Without the counter, group g takes tasks g, g + groups, ... of the hand-out order.
            let taken = counter.map { group.isRoot ? $0.fetchAndAdd(1) : 0 } ?? color + groups * round
            let next = group.broadcast(withUnsafeBytes(of: taken) { Data($0) }, root: 0).withUnsafeBytes { $0.load(as: Int.self) }
            guard next < order.count else { break }
            let (task, name) = (tasks[order[next]], names[order[next]])
            let folder = "\(out)/\(runName)/\(name)"
            var summary: [String: Any]
            if resume, let finished = try? JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: folder + "/summary.json"))) as? [String: Any] {
                summary = finished
            } else {
                let started = ContinuousClock.now
                let trainer = try Trainer(settings: settings(task), folder: folder,
                                          resume: resume && FileManager.default.fileExists(atPath: folder + "/config.json"),
                                          communicator: group, logPrefix: world.logPrefix(group: color) + stage)
                guard let trained = try trainer.run() else { continue }
                summary = trained
                summary["wall_seconds"] = (ContinuousClock.now - started).seconds
                summary["group"] = color
                if group.isRoot { try writeJSON(summary, to: folder + "/summary.json") }
            }
            if group.isRoot {
                summary["files"] = try adapterFiles(folder + "/best_adapter").mapValues { $0.base64EncodedString() }
                mine.append(summary)
            }
        }
        // The coordinator gathers each group root's results: adapters travel as bytes, so the
        // run folders need not be on a file system rank 0 shares.
        counter?.free()
        let payload = try JSONSerialization.data(withJSONObject: mine)
        let results = world.allGather(payload).flatMap { (try? JSONSerialization.jsonObject(with: $0)) as? [[String: Any]] ?? [] }
        if world.isRoot { try writeRegistry(results, folder: "\(out)/registry") }
        world.barrier()
        return results.map { $0.filter { $0.key != "files" } }
    }

    private func adapterFiles(_ folder: String) throws -> [String: Data] {
        var files: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: folder) {
            files[name] = try Data(contentsOf: URL(fileURLWithPath: folder + "/" + name))
        }
        return files
    }

    /// One PEFT folder per task and `manifest.json`: task, method, metrics, steps, wall time and
    /// each file's SHA-256. Written beside the target and renamed into place.
    private func writeRegistry(_ results: [[String: Any]], folder: String) throws {
        let staging = folder + ".partial-\(getpid())"
        try? FileManager.default.removeItem(atPath: staging)
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        var entries: [[String: Any]] = []
        for result in results.sorted(by: { ($0["task"] as? String ?? "") < ($1["task"] as? String ?? "") }) {
            guard let task = result["task"] as? String, let files = result["files"] as? [String: String] else { continue }
            try FileManager.default.createDirectory(atPath: "\(staging)/\(task)", withIntermediateDirectories: true)
            var digests: [String: String] = [:]
            for (name, encoded) in files {
                guard let bytes = Data(base64Encoded: encoded) else { throw InputError(task, "adapter file \(name) arrived damaged") }
                try bytes.write(to: URL(fileURLWithPath: "\(staging)/\(task)/\(name)"))
                digests[name] = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
            }
            var entry = result.filter { ["task", "method", "steps", "best_step", "wall_seconds", "train_seconds",
                                         "trainable_parameters", "primary_metric", "dev", "test", "baseline", "group", "ranks"].contains($0.key) }
            entry["adapter"] = task
            entry["sha256"] = digests
            entries.append(entry)
        }
        try writeJSON(["adapters": entries], to: staging + "/manifest.json")
        try replaceFolder(folder, with: staging)
    }
}
