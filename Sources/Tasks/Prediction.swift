import Foundation
import Model
import Tuning

/// One input to predict, as `ptune predict` reads a line and the server a JSON object: a text
/// (and pair) to classify, or the words of a sentence to tag (`tokens`, or a text split on whitespace).
public struct PredictionInput: Sendable {
    public var text: String
    public var pair: String?
    public var words: [String]?

    /// Reads `object`'s fields for a task of `kind`; errors name `place` and the field.
    /// With `allowEmpty` false, an empty text or word list is an error too.
    public init(_ object: [String: Any], kind: TaskKind, place: String, allowEmpty: Bool = true) throws {
        if kind == .tagging, let tokens = object["tokens"] {
            guard let words = tokens as? [String] else { throw InputError(place, "field 'tokens' is not a list of strings") }
            guard allowEmpty || !words.isEmpty else { throw InputError(place, "field 'tokens' is empty") }
            (text, pair, self.words) = ("", nil, words)
            return
        }
        if kind == .classification, object["tokens"] != nil {
            throw InputError(place, "field 'tokens' is for tagging tasks; this one classifies a 'text'")
        }
        guard let value = object["text"] else {
            throw InputError(place, kind == .tagging ? "missing field 'tokens' or 'text'" : "missing text field 'text'")
        }
        guard let text = value as? String else { throw InputError(place, "field 'text' is not a string") }
        guard allowEmpty || !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw InputError(place, "field 'text' is empty")
        }
        self.text = text
        if let value = object["text_pair"], !(value is NSNull) {
            guard let pair = value as? String else { throw InputError(place, "field 'text_pair' is not a string") }
            self.pair = pair
        }
        words = kind == .tagging ? text.split(whereSeparator: \.isWhitespace).map(String.init) : nil
    }

    /// The model's input: word pieces truncated to `maxLength`, for tagging each kept word's first piece.
    public func encoded(tokenizer: BertTokenizer, kind: TaskKind, maxLength: Int) -> EncodedExample {
        let encoder = ExampleEncoder(tokenizer: tokenizer, kind: kind, maxLength: maxLength)
        switch kind {
        case .classification: return encoder.encode(.classification(text, pair: pair, label: 0))
        case .tagging: return encoder.encode(.tagging(words ?? [], tags: [Int](repeating: 0, count: words?.count ?? 0)))
        }
    }
}

/// The JSON answer for one input, as `ptune predict` writes it and the server returns it:
/// `label` and `logits` for classification; the kept words as `tokens`, their `labels` and
/// `token_logits` for tagging; `truncated: true` when truncation cut the input.
/// `logits` holds (labels) or, for tagging, one row of labels per position of the encoding;
/// `names` turns label indices into names (indices without them).
public func predictionJSON(_ input: PredictionInput, _ encoded: EncodedExample, logits: [Float], labels: Int,
                           kind: TaskKind, names: [String]?) -> String {
    func label(_ values: ArraySlice<Float>) -> String {
        let best = values.indices.max { values[$0] < values[$1] }! - values.startIndex
        return names.map { jsonString($0[best]) } ?? String(best)
    }
    let truncated = encoded.truncated ? ",\"truncated\":true}" : "}"
    switch kind {
    case .classification:
        return "{\"label\":\(label(logits[...])),\"logits\":\(jsonArray(logits[...]))" + truncated
    case .tagging:
        let words = (input.words ?? []).prefix(encoded.wordStarts.count)
        let rows = encoded.wordStarts.map { logits[($0 * labels)..<(($0 + 1) * labels)] }
        return "{\"tokens\":[\(words.map(jsonString).joined(separator: ","))],"
            + "\"labels\":[\(rows.map(label).joined(separator: ","))],"
            + "\"token_logits\":[\(rows.map(jsonArray).joined(separator: ","))]" + truncated
    }
}

/// A string as a JSON literal.
public func jsonString(_ value: String) -> String {
    String(decoding: try! JSONSerialization.data(withJSONObject: [value], options: [.fragmentsAllowed]), as: UTF8.self)
        .dropFirst().dropLast().description
}

/// Numbers as a JSON array (a float printed with just enough digits to read back the same float).
public func jsonArray<T: CustomStringConvertible>(_ values: some Sequence<T>) -> String {
    "[" + values.map(\.description).joined(separator: ",") + "]"
}
