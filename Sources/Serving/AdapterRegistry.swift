import Crypto
import Foundation
import Model
import Tasks
import Tuning

/// A task the server answers: its adapter (a member of the mixed-task model) and what
/// `GET /v1/tasks` says of it.
public struct ServedTask: Sendable {
    public let name: String
    public let kind: TaskKind
    /// Label names in the head's order (nil: the adapter names none, answers give indices).
    public let labels: [String]?
    public let labelCount: Int
    public let method: String
    /// The longest input in tokens its model takes.
    public let maxTokens: Int
    /// The manifest's metrics (primary metric, dev, test, baseline) as JSON; nil for an adapter named on its own.
    let metrics: Data?
}

/// Every adapter of a registry (the folder `ptune run` and `ptune adapt` write: one PEFT folder per
/// task and manifest.json with each file's SHA-256), and adapters named one by one, loaded onto
/// one frozen base.
/// Immutable once loaded; its model runs on the prediction queue's one thread only.
public final class AdapterRegistry: @unchecked Sendable {
    public let model: MixedTaskModel
    public let tokenizer: BertTokenizer
    public let tasks: [ServedTask]

    /// Loads `registry`'s adapters (each file checked against the manifest's SHA-256) and the
    /// `extra` (task, folder) pairs; errors name the file and the task.
    public init(registry: String?, extra: [(task: String, folder: String)], modelFolder: String) throws {
        let base = try PretrainedModel(folder: modelFolder)
        model = MixedTaskModel(weights: base.weights)
        tokenizer = base.tokenizer
        var sources: [(task: String, folder: String, entry: [String: Any]?)] = []
        if let registry { sources += try Self.manifest(of: registry) }
        sources += extra.map { ($0.task, $0.folder, nil) }
        var tasks: [ServedTask] = []
        for source in sources {
            guard !tasks.contains(where: { $0.name == source.task }) else {
                throw InputError(source.folder, "task '\(source.task)' is named twice (registry and --adapter)")
            }
            let member = try model.load(source.folder, name: source.task) { try PretrainedModel(folder: modelFolder).weights }
            tasks.append(ServedTask(
                name: source.task, kind: member.info.kind, labels: member.info.labels, labelCount: member.head.labelCount,
                method: member.info.spec.name, maxTokens: member.maxTokens,
                metrics: try source.entry.map { entry in
                    try JSONSerialization.data(withJSONObject: entry.filter { ["primary_metric", "dev", "test", "baseline"].contains($0.key) },
                                               options: [.sortedKeys])
                }))
        }
        guard !tasks.isEmpty else { throw InputError("--registry", "no adapters to serve: give --registry or --adapter TASK=DIR") }
        self.tasks = tasks
    }

    /// The manifest's tasks and folders, every listed file present with the SHA-256 it records.
    private static func manifest(of registry: String) throws -> [(task: String, folder: String, entry: [String: Any]?)] {
        let path = registry + "/manifest.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw InputError(path, "cannot be read: is \(registry) a registry that ptune run or ptune adapt wrote?")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let entries = object["adapters"] as? [[String: Any]] else {
            throw InputError(path, "is not a manifest: expected {\"adapters\": [...]}")
        }
        return try entries.enumerated().map { index, entry in
            let place = "\(path): adapters[\(index)]"
            guard let task = entry["task"] as? String, !task.isEmpty else { throw InputError(place, "missing field 'task'") }
            let folder = registry + "/" + ((entry["adapter"] as? String) ?? task)
            guard let digests = entry["sha256"] as? [String: String], !digests.isEmpty else {
                throw InputError(place, "missing field 'sha256' (each adapter file's digest)")
            }
            for (name, expected) in digests.sorted(by: { $0.key < $1.key }) {
                let file = folder + "/" + name
                guard let bytes = FileManager.default.contents(atPath: file) else {
                    throw InputError(file, "is listed in \(path) but missing")
                }
                let actual = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
                guard actual == expected.lowercased() else {
                    throw InputError(file, "SHA-256 \(actual) differs from manifest.json's \(expected): the file changed after the registry was written")
                }
            }
            return (task, folder, entry)
        }
    }

    /// `GET /v1/tasks`'s body: each task's name, kind, labels, method and the manifest's metrics.
    public func tasksJSON() -> String {
        let rows = tasks.map { task -> String in
            var fields = ["\"name\":\(jsonString(task.name))", "\"kind\":\(jsonString(task.kind.rawValue))",
                          "\"labels\":" + (task.labels.map { "[" + $0.map(jsonString).joined(separator: ",") + "]" } ?? "null"),
                          "\"label_count\":\(task.labelCount)", "\"method\":\(jsonString(task.method))",
                          "\"max_tokens\":\(task.maxTokens)"]
            fields.append("\"metrics\":" + (task.metrics.map { String(decoding: $0, as: UTF8.self) } ?? "null"))
            return "{" + fields.joined(separator: ",") + "}"
        }
        return "{\"tasks\":[" + rows.joined(separator: ",") + "]}"
    }
}
