import ArgumentParser
import Foundation
import Kernels
import Model
import Tuning

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict with an adapter: each input line {\"text\": ...} (optionally \"text_pair\") gives one output line with the predicted label and the logits (token_logits for tagging).")

    @OptionGroup var model: ModelOptions

    @Option(help: "Adapter folder in PEFT's format (adapter_config.json, adapter_model.safetensors).")
    var adapter: String

    @Option(help: "JSONL input file.")
    var input: String

    @Option(help: "Write here instead of standard output (atomically).")
    var output: String?

    @OptionGroup var inference: InferenceOptions

    @Flag(help: "Merge LoRA updates into the weights first (same logits, no extra cost per token).")
    var merge = false

    func run() throws {
        let pretrained = try PretrainedModel(folder: model.folder)
        let (tuned, info) = try PeftAdapter.read(adapter, weights: pretrained.weights)
        if merge { for (_, linear) in pretrained.weights.linears { linear.merge() } }
        let texts = try readTexts(input)
        let encodings = texts.map { pretrained.tokenizer.encode($0.text, pair: $0.pair, maxLength: inference.maxLength) }
        var lines: [String] = []
        for start in stride(from: 0, to: encodings.count, by: inference.batchSize) {
            let members = Array(encodings[start..<min(start + inference.batchSize, encodings.count)])
            let batch = TokenBatch(encodings: members, paddingId: pretrained.tokenizer.paddingId)
            let logits = tuned.forward(batch, forBackward: false)
            let labels = tuned.head.labelCount
            for (b, encoding) in members.enumerated() {
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
                    let rows = (0..<encoding.inputIds.count).map { row(b * batch.length + $0) }
                    lines.append("{\"labels\":[\(rows.map(label).joined(separator: ","))],\"token_logits\":[\(rows.map(jsonArray).joined(separator: ","))]}")
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

    /// The texts of a JSONL file; errors name the file and line.
    private func readTexts(_ path: String) throws -> [(text: String, pair: String?)] {
        guard let content = try? String(contentsOfFile: path, encoding: .utf8) else { throw InputError(path, "cannot read") }
        var texts: [(String, String?)] = []
        for (index, line) in content.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
                throw InputError("\(path):\(index + 1)", "not a JSON object")
            }
            guard let text = object["text"] as? String else {
                throw InputError("\(path):\(index + 1)", "missing text field 'text'")
            }
            texts.append((text, object["text_pair"] as? String))
        }
        return texts
    }
}

/// A string as a JSON literal.
func jsonString(_ value: String) -> String {
    String(decoding: try! JSONSerialization.data(withJSONObject: [value], options: [.fragmentsAllowed]), as: UTF8.self)
        .dropFirst().dropLast().description
}
