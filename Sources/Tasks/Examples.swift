import Foundation
import Model
import Tuning

/// One labelled example: a text (or pair) with a label index, or words with tag indices.
public struct Example: Equatable, Sendable {
    public var text: String
    public var pair: String?
    public var label: Int
    public var words: [String]
    public var tags: [Int]

    public static func classification(_ text: String, pair: String? = nil, label: Int) -> Example {
        Example(text: text, pair: pair, label: label, words: [], tags: [])
    }

    public static func tagging(_ words: [String], tags: [Int]) -> Example {
        Example(text: "", pair: nil, label: -1, words: words, tags: tags)
    }
}

extension TaskSpec {
    /// Reads a split's examples; every error names the file and line.
    public func examples(_ split: String) throws -> [Example] {
        let path = try file(split)
        let content = try TextFile.text(path)
        let examples: [Example]
        switch format {
        case .jsonl: examples = try jsonlExamples(TextFile.lines(of: content), path: path)
        case .csv: examples = try csvExamples(content, path: path)
        case .conll: examples = try conllExamples(TextFile.lines(of: content), path: path)
        }
        guard !examples.isEmpty else { throw InputError(path, "the \(split) split is empty") }
        return examples
    }

    private func labelIndex(_ value: Any?, field: String, at place: String) throws -> Int {
        let name: String
        switch value {
        case let text as String: name = text
        case let number as NSNumber: name = number.stringValue
        case nil: throw InputError(place, "missing label field '\(field)'")
        default: throw InputError(place, "field '\(field)' is not a label name")
        }
        guard let index = labels.firstIndex(of: name) else {
            throw InputError(place, "label '\(name)' is not in the spec's labels \(labels)")
        }
        return index
    }

    private func jsonlExamples(_ lines: [Substring], path: String) throws -> [Example] {
        var examples: [Example] = []
        for (number, line) in lines.enumerated()
        where !line.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            let place = "\(path):\(number + 1)"
            guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
                throw InputError(place, "not a JSON object")
            }
            switch kind {
            case .classification:
                guard let text = object[textField] as? String else { throw InputError(place, "missing text field '\(textField)'") }
                var pair: String?
                if let pairField = textPairField {
                    guard let value = object[pairField] as? String else { throw InputError(place, "missing text field '\(pairField)'") }
                    pair = value
                }
                examples.append(.classification(text, pair: pair, label: try labelIndex(object[labelField], field: labelField, at: place)))
            case .tagging:
                guard let words = object[textField] as? [String] else {
                    throw InputError(place, "field '\(textField)' must be a list of tokens")
                }
                guard let tags = object[labelField] as? [Any], tags.count == words.count else {
                    throw InputError(place, "field '\(labelField)' must list one tag per token")
                }
                examples.append(.tagging(words, tags: try tags.map { try labelIndex($0, field: labelField, at: place) }))
            }
        }
        return examples
    }

    private func csvExamples(_ content: String, path: String) throws -> [Example] {
        let rows = try parseCSV(content, path: path)
        guard let header = rows.first else { return [] }
        func column(_ name: String) throws -> Int {
            guard let index = header.fields.firstIndex(of: name) else {
                throw InputError("\(path):\(header.line)", "header has no column '\(name)'")
            }
            return index
        }
        let (textColumn, labelColumn) = (try column(textField), try column(labelField))
        let pairColumn = try textPairField.map(column)
        return try rows.dropFirst().map { row in
            let place = "\(path):\(row.line)"
            guard row.fields.count == header.fields.count else {
                throw InputError(place, "\(row.fields.count) fields where the header has \(header.fields.count)")
            }
            return .classification(row.fields[textColumn], pair: pairColumn.map { row.fields[$0] },
                                   label: try labelIndex(row.fields[labelColumn], field: labelField, at: place))
        }
    }

    private func conllExamples(_ lines: [Substring], path: String) throws -> [Example] {
        var examples: [Example] = []
        var words: [String] = [], tags: [Int] = []
        func flush() {
            if !words.isEmpty { examples.append(.tagging(words, tags: tags)) }
            words = []; tags = []
        }
        for (number, line) in lines.enumerated() {
            if line.trimmingCharacters(in: .whitespaces).isEmpty { flush(); continue }
            let place = "\(path):\(number + 1)"
            let parts = line.split(separator: "\t", omittingEmptySubsequences: false)
            // CoNLL-2003's document separators are not sentences.
            if line.hasPrefix("-DOCSTART-") { flush(); continue }
            guard parts.count >= 2, !parts[0].isEmpty else { throw InputError(place, "expected token, tab, tag") }
            if let tagColumn, parts.count < tagColumn {
                throw InputError(place, "\(parts.count) columns, but the spec's tag_column is \(tagColumn)")
            }
            words.append(String(parts[0]))
            tags.append(try labelIndex(String(parts[(tagColumn ?? parts.count) - 1]).trimmingCharacters(in: .whitespaces),
                                       field: tagColumn.map { "tag (column \($0))" } ?? "tag (last column)", at: place))
        }
        flush()
        return examples
    }
}

/// RFC 4180 CSV: quoted fields may hold commas, quotes (doubled) and newlines.
/// Returns each record's fields and the line it starts on.
func parseCSV(_ content: String, path: String) throws -> [(line: Int, fields: [String])] {
    var records: [(Int, [String])] = []
    var fields: [String] = [], field = "", quoted = false, afterQuote = false
    var line = 1, recordLine = 1, quoteLine = 1
    // A Windows-made file's line breaks, inside quotes too, read as Unix ones.
    let content = content.replacingOccurrences(of: "\r\n", with: "\n")
    var scalars = content.unicodeScalars.makeIterator()
    func endRecord() {
        fields.append(field)
        if !(fields.count == 1 && fields[0].isEmpty) { records.append((recordLine, fields)) }
        fields = []; field = ""
    }
    while let c = scalars.next() {
        if quoted {
            if c == "\"" { quoted = false; afterQuote = true } else { field.unicodeScalars.append(c) }
            if c == "\n" { line += 1 }
            continue
        }
        switch c {
        case "\"":
            if afterQuote { field.append("\"") }
            else if !field.isEmpty { throw InputError("\(path):\(line)", "a quote inside an unquoted field") }
            quoted = true
            quoteLine = line
        case ",": fields.append(field); field = ""
        case "\r": break
        case "\n": endRecord(); line += 1; recordLine = line
        default: field.unicodeScalars.append(c)
        }
        afterQuote = false
    }
    if quoted { throw InputError("\(path):\(quoteLine)", "the quoted field opened on this line never ends") }
    if !field.isEmpty || !fields.isEmpty { endRecord() }
    return records
}
