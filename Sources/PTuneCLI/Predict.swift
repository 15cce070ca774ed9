import ArgumentParser
import Foundation
import Kernels
import Model
import Tasks
import Tuning

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict with an adapter: each input line {\"text\": ...} (optionally \"text_pair\"; for tagging {\"tokens\": [...]} or a text split on whitespace) gives one output line with the predicted label and the logits (one label and row of logits per word for tagging); a blank input line gives a line null.")

    @OptionGroup var model: ModelOptions

    @Option(help: "Adapter folder in PEFT's format (adapter_config.json, adapter_model.safetensors).")
    var adapter: String

    @Option(help: "JSONL input file, or - for standard input.")
    var input: String

    @Option(help: "Comma-separated label names in the classifier's order, for an adapter that has none (PEFT's): labels are then names, not indices.")
    var labels: String?

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
        if merge {
            guard info.spec.method is LoRAMethod else {
                throw ValidationError("--merge: only LoRA updates merge into the weights; \(adapter) is \(info.spec.name)")
            }
            for (_, linear) in pretrained.weights.linears { linear.merge() }
        }
        warnIfMadeForAnotherModel(info.baseModel)
        let names = try labelNames(info, classes: tuned.head.labelCount)
        let lines = try readInputs(input, kind: info.kind)
        let inputs = lines.compactMap { $0 }
        // Tagging: each word's first piece carries its label, as in training; words cut by truncation get none.
        let wordEncoder = ExampleEncoder(tokenizer: pretrained.tokenizer, kind: .tagging, maxLength: inference.maxLength)
        let encoded = inputs.map { input -> (encoding: Encoding, wordStarts: [Int]) in
            guard let words = input.words else {
                return (pretrained.tokenizer.encode(input.text, pair: input.pair, maxLength: inference.maxLength), [])
            }
            let example = wordEncoder.encode(.tagging(words, tags: [Int](repeating: 0, count: words.count)))
            return (Encoding(inputIds: example.inputIds, tokenTypeIds: example.tokenTypeIds), example.wordStarts)
        }
        var outputs: [String] = []
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
                    return names.map { jsonString($0[best]) } ?? String(best)
                }
                switch info.kind {
                case .classification:
                    let values = row(b)
                    outputs.append("{\"label\":\(label(values)),\"logits\":\(jsonArray(values))}")
                case .tagging:
                    let words = inputs[start + b].words!.prefix(member.wordStarts.count)
                    let rows = member.wordStarts.map { row(b * batch.length + $0) }
                    outputs.append("{\"tokens\":[\(words.map(jsonString).joined(separator: ","))],"
                                 + "\"labels\":[\(rows.map(label).joined(separator: ","))],"
                                 + "\"token_logits\":[\(rows.map(jsonArray).joined(separator: ","))]"
                                 + (words.count < inputs[start + b].words!.count ? ",\"truncated\":true}" : "}"))
                }
            }
        }
        // One output line per input line: blank ones answer null.
        var answers = outputs.makeIterator()
        let text = lines.map { ($0 == nil ? "null" : answers.next()!) + "\n" }.joined()
        if let output {
            try writeAtomically(Data(text.utf8), to: output)
        } else {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }

    /// The label names: `--labels`, else the adapter's own, else none (indices).
    private func labelNames(_ info: AdapterInfo, classes: Int) throws -> [String]? {
        guard let labels else { return info.labels }
        let names = labels.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard names.count == classes else {
            throw ValidationError("--labels names \(names.count) labels but the adapter's classifier has \(classes)")
        }
        return names
    }

    /// An adapter records the model it was trained on; another checkpoint of the same shape loads
    /// it without complaint but computes something else.
    private func warnIfMadeForAnotherModel(_ baseModel: String) {
        let name = { (path: String) in URL(fileURLWithPath: path).standardizedFileURL.lastPathComponent.lowercased() }
        guard !baseModel.isEmpty, name(baseModel) != name(model.folder) else { return }
        FileHandle.standardError.write(Data("warning: \(adapter) was trained on \(baseModel); predicting with \(model.folder)\n".utf8))
    }

    /// The lines of a JSONL file (`-`: standard input): a text (and pair) to classify, or for tagging
    /// the words, given as "tokens" or as a text split on whitespace; nil for a blank line.
    /// Errors name the file and line.
    private func readInputs(_ path: String, kind: TaskKind) throws -> [(text: String, pair: String?, words: [String]?)?] {
        var inputs: [(String, String?, [String]?)?] = []
        let source = path == "-" ? "standard input" : path
        for (index, line) in try (path == "-" ? TextFile.standardInputLines() : TextFile.lines(atPath: path)).enumerated() {
            guard !line.trimmingCharacters(in: .whitespaces).isEmpty else {
                inputs.append(nil)
                continue
            }
            let place = "\(source):\(index + 1)"
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
