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
        let encoded = inputs.map { $0.encoded(tokenizer: pretrained.tokenizer, kind: info.kind, maxLength: inference.maxLength) }
        var outputs: [String] = []
        for start in stride(from: 0, to: encoded.count, by: inference.batchSize) {
            let members = Array(encoded[start..<min(start + inference.batchSize, encoded.count)])
            let batch = TokenBatch(encodings: members.map { Encoding(inputIds: $0.inputIds, tokenTypeIds: $0.tokenTypeIds) },
                                   paddingId: pretrained.tokenizer.paddingId)
            let logits = tuned.forward(batch, forBackward: false)
            // JSON has no NaN: a broken adapter is an error, not an unreadable line.
            guard logits.isFinite else {
                throw InputError(adapter, "computes non-finite logits (NaN or infinity); its weights are broken or diverged")
            }
            let labels = tuned.head.labelCount, perSequence = logits.count / members.count
            for (b, member) in members.enumerated() {
                let values = Array(UnsafeBufferPointer(start: logits.data + b * perSequence, count: perSequence))
                outputs.append(predictionJSON(inputs[start + b], member, logits: values, labels: labels, kind: info.kind,
                                              names: names))
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

    /// The lines of a JSONL file (`-`: standard input), each an input (see `PredictionInput`); nil for a
    /// blank line. Errors name the file and line.
    private func readInputs(_ path: String, kind: TaskKind) throws -> [PredictionInput?] {
        var inputs: [PredictionInput?] = []
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
            inputs.append(try PredictionInput(object, kind: kind, place: place))
        }
        return inputs
    }
}
