import Foundation

/// A Hugging Face checkpoint folder loaded: config, weights and tokenizer.
public struct PretrainedModel {
    public let folder: String
    public let config: BertConfig
    public let weights: BertWeights
    public let tokenizer: BertTokenizer

    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` or `vocab.txt` from `folder`.
    public init(folder: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw InputError(folder, "no such model folder (run scripts/fetch-model.sh, or pass --model DIR)")
        }
        self.folder = folder
        config = try BertConfig(contentsOf: (folder as NSString).appendingPathComponent("config.json"))
        let checkpoint = try SafeTensorsFile(path: (folder as NSString).appendingPathComponent("model.safetensors"))
        weights = try BertWeights(config: config, checkpoint: checkpoint)
        tokenizer = try BertTokenizer(folder: folder)
        // A token id past the table would read outside it: the vocabulary must fit the model.
        guard Int(tokenizer.largestId) < config.vocabSize else {
            throw InputError(folder, "the tokenizer has ids up to \(tokenizer.largestId) but the model's embedding table "
                             + "has \(config.vocabSize) rows (vocab_size in config.json); tokenizer and model do not match")
        }
    }

    /// The folder `scripts/fetch-model.sh` fills: `$PTUNE_MODEL` if set, else
    /// `$PTUNE_CACHE/models/all-MiniLM-L6-v2` (cache default `~/.cache/ptune`).
    public static var defaultFolder: String {
        let environment = ProcessInfo.processInfo.environment
        if let explicit = environment["PTUNE_MODEL"], !explicit.isEmpty { return explicit }
        let cache = environment["PTUNE_CACHE"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (NSHomeDirectory() as NSString).appendingPathComponent(".cache/ptune")
        return (cache as NSString).appendingPathComponent("models/all-MiniLM-L6-v2")
    }
}
