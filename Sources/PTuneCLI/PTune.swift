import ArgumentParser
import Foundation
import Kernels
import Model

@main
struct PTune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ptune",
        abstract: "Distributed multi-task parameter-efficient fine-tuning of BERT-family encoders.",
        subcommands: [Tokenize.self, Encode.self, Train.self, Eval.self, Predict.self, Params.self, Pretrain.self, Adapt.self, Run.self, Bench.self, Serve.self])

    static func main() {
        main(OldSpellings.rewrite(Array(CommandLine.arguments.dropFirst())))
    }
}

/// Option spellings of earlier versions, still accepted but no longer shown: every command now
/// says `--batch-size`, `--max-length`, and `--out RUN --resume`.
enum OldSpellings {
    static let renamed: [String: [String: String]] = ["bench": ["--batch": "--batch-size", "--seq": "--max-length"]]

    static func rewrite(_ arguments: [String]) -> [String] {
        guard let command = arguments.first else { return arguments }
        var result = [command]
        var rest = arguments.dropFirst()
        while let argument = rest.popFirst() {
            let (name, value) = argument.split(separator: "=", maxSplits: 1).map(String.init).splitFirst
            if let new = renamed[command]?[name] {
                result.append(value.map { "\(new)=\($0)" } ?? new)
            } else if command == "train", name == "--resume", value != nil || !(rest.first?.hasPrefix("-") ?? true) {
                // `train --resume RUN` took the folder; now it is `--out RUN --resume`, as for the pipeline.
                result += ["--out", value ?? rest.popFirst()!, "--resume"]
            } else {
                result.append(argument)
            }
        }
        return result
    }
}

private extension Array where Element == String {
    var splitFirst: (String, String?) { (self[0], count > 1 ? self[1] : nil) }
}

/// Options every command that loads a model shares.
struct ModelOptions: ParsableArguments {
    @Option(help: "Hugging Face checkpoint folder (config.json, model.safetensors, tokenizer.json or vocab.txt). Default: the folder scripts/fetch-model.sh fills.")
    var model: String?

    var folder: String { model ?? PretrainedModel.defaultFolder }
}

extension Precision: ExpressibleByArgument {}

/// The matrix products' precision, for every command that runs the model.
struct PrecisionOptions: ParsableArguments {
    @Option(help: "Matrix products in fp32, or bf16 (bfloat16 inputs and frozen weights, float32 accumulation and everything else). Default: bf16 where the processor has AVX512-BF16 or AMX, else fp32.")
    var precision: Precision?

    /// Sets the engine's precision (`stored` wins: a resumed run keeps the one it started with),
    /// after checking the processor runs it, and with `announce` says so as the first log line
    /// (commands whose output is their answer, as predict's, stay quiet).
    @discardableResult
    func apply(stored: Precision? = nil, announce: Bool = true) throws -> Precision {
        if let stored, let precision, precision != stored {
            throw ValidationError("the run started at \(stored.rawValue) precision and keeps it; --precision \(precision.rawValue) cannot change it")
        }
        let chosen = stored ?? precision ?? MatrixEngine.defaultPrecision
        if chosen == .bf16, !MatrixEngine.supportsBFloat16 {
            throw ValidationError("--precision bf16: this processor has neither AVX512-BF16 nor AMX (use fp32)")
        }
        MatrixEngine.precision = chosen
        // Under mpirun every rank runs this; rank 0 says it.
        guard announce, ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_RANK"].map({ $0 == "0" }) ?? true else {
            return chosen
        }
        let reason = stored != nil ? "as the run started" : precision != nil ? "--precision" : "the processor's default"
        FileHandle.standardError.write("precision: \(chosen.rawValue) (\(reason)); matrix engine oneDNN, \(Parallelism.threads) threads\n"
            .data(using: .utf8)!)
        return chosen
    }
}

/// How a command that only runs the model forward batches and truncates its texts.
struct InferenceOptions: ParsableArguments {
    @Option(help: "Texts per forward pass.")
    var batchSize = 32

    @Option(help: "Truncate to this many tokens, [CLS] and [SEP] included.")
    var maxLength = 128

    func validate() throws {
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive") }
        guard maxLength >= 2 else { throw ValidationError("--max-length must be at least 2") }
    }
}
