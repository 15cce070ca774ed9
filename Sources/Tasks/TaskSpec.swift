import Foundation
import Model
import Tuning

/// A task described in a small JSON spec file, not in code:
///
///     {"name": "sentiment", "kind": "classification", "labels": ["fresh", "rotten", "plot"],
///      "format": "jsonl", "text_field": "text", "label_field": "label",
///      "train": "data/sentiment/train.jsonl", "dev": "...", "test": "..."}
///
/// `kind` is `classification` or `tagging`; `format` is `jsonl`, `csv` (with a header row)
/// or `conll` (token, tab-separated columns, the tag in the last one or in `tag_column`, counted
/// from 1; a blank line between sentences, `-DOCSTART-` lines skipped); `text_pair_field` is
/// optional; tagging JSONL lines are `{"tokens": [...], "tags": [...]}`. `train` is required;
/// without `dev`, the best adapter is chosen on train; without `test`, no test score is given.
/// Paths are relative to the spec file.
public struct TaskSpec: Equatable, Sendable {
    public enum Format: String, Sendable { case jsonl, csv, conll }

    public var name: String
    public var kind: TaskKind
    public var labels: [String]
    public var format: Format
    public var textField: String
    public var textPairField: String?
    public var labelField: String
    /// CoNLL: the column (from 1; the token is column 1) that holds the tag; nil: the last.
    public var tagColumn: Int?
    /// Split name → absolute path.
    public var splits: [String: String]
    /// The spec file itself.
    public var path: String

    /// Reads and validates a spec file; errors name the file and the field.
    public init(contentsOf path: String) throws {
        let json = try JSONFields(contentsOf: path).json
        func string(_ key: String, default fallback: String? = nil) throws -> String {
            guard let value = json[key] else {
                if let fallback { return fallback }
                throw InputError(path, "missing field '\(key)'")
            }
            guard let text = value as? String, !text.isEmpty else { throw InputError(path, "field '\(key)' must be a non-empty string") }
            return text
        }
        self.path = path
        // A misspelt optional field would otherwise be ignored without a word ("text_pair_feild").
        if let unknown = json.keys.sorted().first(where: { !Self.fields.contains($0) }) {
            let near = Self.fields.min { editDistance($0, unknown) < editDistance($1, unknown) }!
            throw InputError(path, "unknown field '\(unknown)'" + (editDistance(near, unknown) <= 3 ? " (did you mean '\(near)'?)" : "")
                             + "; a spec has \(Self.fields.sorted().joined(separator: ", "))")
        }
        name = try string("name")
        // The name becomes a folder of runs and registries: a plain name, never a path.
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "._-"))
        guard name.count <= 100, name.unicodeScalars.allSatisfy({ $0.isASCII && allowed.contains($0) }),
              name != ".", name != "..", !name.hasPrefix(".") else {
            throw InputError(path, "field 'name' must be a plain name of letters, digits, '.', '_' and '-' "
                             + "(at most 100, not starting with '.'), not '\(name)'")
        }
        guard let kind = TaskKind(rawValue: try string("kind")) else {
            throw InputError(path, "field 'kind' must be classification or tagging")
        }
        self.kind = kind
        guard let labels = json["labels"] as? [String], !labels.isEmpty else {
            throw InputError(path, "field 'labels' must be a non-empty list of strings")
        }
        guard Set(labels).count == labels.count else { throw InputError(path, "field 'labels' lists a label twice") }
        self.labels = labels
        guard let format = Format(rawValue: try string("format", default: kind == .tagging ? "conll" : "jsonl")) else {
            throw InputError(path, "field 'format' must be jsonl, csv or conll")
        }
        guard !(kind == .classification && format == .conll) else {
            throw InputError(path, "format conll holds tagged tokens; classification needs jsonl or csv")
        }
        guard !(kind == .tagging && format == .csv) else {
            throw InputError(path, "format csv holds one label per row; tagging needs jsonl or conll")
        }
        self.format = format
        textField = try string("text_field", default: kind == .tagging ? "tokens" : "text")
        textPairField = json["text_pair_field"] as? String
        labelField = try string("label_field", default: kind == .tagging ? "tags" : "label")
        if let column = json["tag_column"] {
            guard format == .conll, let number = column as? Int, number >= 2 else {
                throw InputError(path, "field 'tag_column' must be a CoNLL column number, 2 or more (the token is column 1)")
            }
            tagColumn = number
        }
        let folder = (path as NSString).deletingLastPathComponent
        var splits: [String: String] = [:]
        for split in ["train", "dev", "test"] {
            guard let relative = json[split] as? String else { continue }
            splits[split] = relative.hasPrefix("/") ? relative : (folder as NSString).appendingPathComponent(relative)
        }
        guard splits["train"] != nil else {
            throw InputError(path, "missing field 'train' (the training split's file; 'dev' and 'test' are optional)")
        }
        self.splits = splits
    }

    /// The fields a spec may have ("description" for the reader's benefit).
    static let fields: Set<String> = ["name", "kind", "labels", "format", "text_field", "text_pair_field", "label_field",
                                      "tag_column", "train", "dev", "test", "description"]

    /// The file of a split, or an error naming the spec and the split.
    public func file(_ split: String) throws -> String {
        guard let file = splits[split] else { throw InputError(path, "no '\(split)' split") }
        return file
    }
}

extension Array where Element == TaskSpec {
    /// Checks that no two tasks of a job share a name (it names their folders and heads); the error
    /// names both spec files.
    public func checkNamesUnique() throws {
        for (index, spec) in enumerated() {
            if let earlier = self[..<index].first(where: { $0.name == spec.name }) {
                throw InputError(spec.path, "task name '\(spec.name)' is also the name of \(earlier.path); "
                                 + "each task of a job needs its own name (it names the task's folder)")
            }
        }
    }
}

/// Levenshtein distance between two short strings (field names).
func editDistance(_ a: String, _ b: String) -> Int {
    let (a, b) = (Array(a), Array(b))
    var previous = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var current = [i] + [Int](repeating: 0, count: b.count)
        for j in stride(from: 1, through: b.count, by: 1) {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return a.isEmpty ? b.count : previous[b.count]
}
