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
        let file = try JSONFile.decode(SpecFile.self, from: path)
        self.path = path
        // A misspelt optional field would otherwise be ignored without a word ("text_pair_feild").
        if let unknown = file.keys.sorted().first(where: { !Self.fields.contains($0) }) {
            let near = Self.fields.min { editDistance($0, unknown) < editDistance($1, unknown) }!
            throw InputError(path, "unknown field '\(unknown)'" + (editDistance(near, unknown) <= 3 ? " (did you mean '\(near)'?)" : "")
                             + "; a spec has \(Self.fields.sorted().joined(separator: ", "))")
        }
        func nonEmpty(_ value: String?, _ key: String, default fallback: String? = nil) throws -> String {
            guard let value = value ?? fallback else { throw InputError(path, "missing field '\(key)'") }
            guard !value.isEmpty else { throw InputError(path, "field '\(key)' must be a non-empty string") }
            return value
        }
        name = try nonEmpty(file.name, "name")
        // The name becomes a folder of runs and registries: a plain name, never a path.
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "._-"))
        guard name.count <= 100, name.unicodeScalars.allSatisfy({ $0.isASCII && allowed.contains($0) }),
              name != ".", name != "..", !name.hasPrefix(".") else {
            throw InputError(path, "field 'name' must be a plain name of letters, digits, '.', '_' and '-' "
                             + "(at most 100, not starting with '.'), not '\(name)'")
        }
        guard let kind = TaskKind(rawValue: try nonEmpty(file.kind, "kind")) else {
            throw InputError(path, "field 'kind' must be classification or tagging")
        }
        self.kind = kind
        guard let labels = file.labels, !labels.isEmpty else {
            throw InputError(path, "field 'labels' must be a non-empty list of strings")
        }
        guard Set(labels).count == labels.count else { throw InputError(path, "field 'labels' lists a label twice") }
        self.labels = labels
        guard let format = Format(rawValue: try nonEmpty(file.format, "format", default: kind == .tagging ? "conll" : "jsonl")) else {
            throw InputError(path, "field 'format' must be jsonl, csv or conll")
        }
        guard !(kind == .classification && format == .conll) else {
            throw InputError(path, "format conll holds tagged tokens; classification needs jsonl or csv")
        }
        guard !(kind == .tagging && format == .csv) else {
            throw InputError(path, "format csv holds one label per row; tagging needs jsonl or conll")
        }
        self.format = format
        textField = try nonEmpty(file.textField, "text_field", default: kind == .tagging ? "tokens" : "text")
        textPairField = file.textPairField
        labelField = try nonEmpty(file.labelField, "label_field", default: kind == .tagging ? "tags" : "label")
        if let column = file.tagColumn {
            guard format == .conll, column >= 2 else {
                throw InputError(path, "field 'tag_column' must be a CoNLL column number, 2 or more (the token is column 1)")
            }
            tagColumn = column
        }
        let folder = (path as NSString).deletingLastPathComponent
        var splits: [String: String] = [:]
        for (split, relative) in [("train", file.train), ("dev", file.dev), ("test", file.test)] {
            guard let relative else { continue }
            splits[split] = relative.hasPrefix("/") ? relative : (folder as NSString).appendingPathComponent(relative)
        }
        guard splits["train"] != nil else {
            throw InputError(path, "missing field 'train' (the training split's file; 'dev' and 'test' are optional)")
        }
        self.splits = splits
    }

    /// A spec file as written: every field optional here, so that what is missing or wrong is
    /// reported by `init(contentsOf:)` in the spec's own terms.
    fileprivate struct SpecFile: Decodable {
        var name, kind, format, textField, textPairField, labelField, train, dev, test, description: String?
        var labels: [String]?
        var tagColumn: Int?
        /// Every field the file has, to catch a misspelt one.
        var keys: [String]

        fileprivate enum CodingKeys: String, CodingKey, CaseIterable {
            case name, kind, format, labels, train, dev, test, description
            case textField = "text_field", textPairField = "text_pair_field", labelField = "label_field"
            case tagColumn = "tag_column"
        }

        private struct AnyKey: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        init(from decoder: Decoder) throws {
            let fields = try decoder.container(keyedBy: CodingKeys.self)
            keys = try decoder.container(keyedBy: AnyKey.self).allKeys.map(\.stringValue)
            func string(_ key: CodingKeys) throws -> String? { try fields.decodeIfPresent(String.self, forKey: key) }
            (name, kind, format, description) = (try string(.name), try string(.kind), try string(.format),
                                                 try string(.description))
            (textField, textPairField, labelField) = (try string(.textField), try string(.textPairField),
                                                      try string(.labelField))
            (train, dev, test) = (try string(.train), try string(.dev), try string(.test))
            labels = try fields.decodeIfPresent([String].self, forKey: .labels)
            tagColumn = try fields.decodeIfPresent(Int.self, forKey: .tagColumn)
        }
    }

    /// The fields a spec may have ("description" for the reader's benefit): those its file decodes.
    static let fields = Set(SpecFile.CodingKeys.allCases.map(\.rawValue))

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
