import ArgumentParser
import Foundation
import Kernels
import Model
import Tasks
import Tuning

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict with an adapter: each input line {\"text\": ...} (optionally \"text_pair\"; for tagging {\"tokens\": [...]} or a text split on whitespace) gives one output line with the predicted label and the logits (one label and row of logits per word for tagging).")

    @OptionGroup var model: ModelOptions

    @Option(help: "Adapter folder in PEFT's format (adapter_config.json, adapter_model.safetensors).")
    var adapter: String

    @Option(help: "JSONL input file.")
    var input: String

    @Option(help: "Write here instead of standard output (atomically).")
    var output: String?

    @OptionGroup var inference: InferenceOptions
    @OptionGroup var precision: PrecisionOptions

    @Flag(help: "Merge LoRA updates into the weights first (same logits, no extra cost per token).")
    var merge = false

    func run() throws {
        try precision.apply(announce: false)
        let pretrained = try PretrainedModel(folder: model.folder)
        let (tuned, info) = try PeftAdapter.read(adapter, weights: pretrained.weights)
        try tuned.checkFits(maxLength: inference.maxLength)
        if merge { for (_, linear) in pretrained.weights.linears { linear.merge() } }
        let inputs = try readInputs(input, kind: info.kind)
        // Tagging: each word's first piece carries its label, as in training; words cut by truncation get none.
        let wordEncoder = ExampleEncoder(tokenizer: pretrained.tokenizer, kind: .tagging, maxLength: inference.maxLength)
        let encoded = inputs.map { input -> (encoding: Encoding, wordStarts: [Int]) in
            guard let words = input.words else {
                return (pretrained.tokenizer.encode(input.text, pair: input.pair, maxLength: inference.maxLength), [])
            }
            let example = wordEncoder.encode(.tagging(words, tags: [Int](repeating: 0, count: words.count)))
            return (Encoding(inputIds: example.inputIds, tokenTypeIds: example.tokenTypeIds), example.wordStarts)
        }
        var lines: [String] = []
        for start in stride(from: 0, to: encoded.count, by: inference.batchSize) {
            let members = Array(encoded[start..<min(start + inference.batchSize, encoded.count)])
            let batch = TokenBatch(encodings: members.map(\.encoding), paddingId: pretrained.tokenizer.paddingId)
            let logits = tuned.forward(batch, forBackward: false)
            // JSON has no NaN: a broken adapter is an error, not an unreadable line.
            guard logits.isFinite else {
                throw InputError(adapter, "computes non-finite logits (NaN or infinity); its weights are broken or diverged")
            }
            let labels = tuned.head.labelCount
            for (b, member) in members.enumerated() {
                func row(_ index: Int) -> [Float] { Array(UnsafeBufferPointer(start: logits.data + index * labels, count: labels)) }
                func label(_ values: [Float]) -> String {
                    let best = values.indices.max { values[$0] < values[$1] }!
                    return info.labels.map { jsonString($0[best]) } ?? String(best)
                }
                switch info.kind {
                case .classification:
                    let values = row(b)
                    lines.append("{\"label\":\(label(values)),\"logits\":\(jsonArray(values))}")
                case .tagging:
                    let words = inputs[start + b].words!.prefix(member.wordStarts.count)
                    let rows = member.wordStarts.map { row(b * batch.length + $0) }
                    lines.append("{\"tokens\":[\(words.map(jsonString).joined(separator: ","))],"
                                 + "\"labels\":[\(rows.map(label).joined(separator: ","))],"
                                 + "\"token_logits\":[\(rows.map(jsonArray).joined(separator: ","))]"
                                 + (words.count < inputs[start + b].words!.count ? ",\"truncated\":true}" : "}"))
                }
            }
        }
        let text = lines.map { $0 + "\n" }.joined()
        if let output {
            try writeAtomically(Data(text.utf8), to: output)
        } else {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }

    /// The inputs of a JSONL file: a text (and pair) to classify, or for tagging the words,
    /// given as "tokens" or as a text split on whitespace. Errors name the file and line.
    private func readInputs(_ path: String, kind: TaskKind) throws -> [(text: String, pair: String?, words: [String]?)] {
        var inputs: [(String, String?, [String]?)] = []
        for (index, line) in try TextFile.lines(atPath: path).enumerated()
        where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            let place = "\(path):\(index + 1)"
            guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
                throw InputError(place, "not a JSON object")
            }
            if kind == .tagging, let tokens = object["tokens"] {
                guard let words = tokens as? [String] else { throw InputError(place, "field 'tokens' is not a list of strings") }
                inputs.append(("", nil, words))
                continue
            }
            guard let text = object["text"] as? String else {
                throw InputError(place, kind == .tagging ? "missing field 'tokens' or 'text'" : "missing text field 'text'")
            }
            let words = kind == .tagging ? text.split(whereSeparator: \.isWhitespace).map(String.init) : nil
            inputs.append((text, object["text_pair"] as? String, words))
        }
        return inputs
    }
}

/// A string as a JSON literal.
func jsonString(_ value: String) -> String {
    String(decoding: try! JSONSerialization.data(withJSONObject: [value], options: [.fragmentsAllowed]), as: UTF8.self)
        .dropFirst().dropLast().description
}
