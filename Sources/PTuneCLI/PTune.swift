import ArgumentParser
import Model

@main
struct PTune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ptune",
        abstract: "Distributed multi-task parameter-efficient fine-tuning of BERT-family encoders.",
        subcommands: [Tokenize.self, Encode.self, Train.self, Eval.self, Predict.self, Params.self, Pretrain.self, Adapt.self, Run.self, Bench.self])
}

/// Options every command that loads a model shares.
struct ModelOptions: ParsableArguments {
    @Option(help: "Hugging Face checkpoint folder (config.json, model.safetensors, tokenizer.json or vocab.txt). Default: the folder scripts/fetch-model.sh fills.")
    var model: String?

    var folder: String { model ?? PretrainedModel.defaultFolder }
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
