import Foundation

/// The fields of a Hugging Face `config.json` that a BERT-family encoder needs.
public struct BertConfig: Equatable, Sendable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var layers: Int
    public var heads: Int
    public var intermediateSize: Int
    public var maxPositions: Int
    public var typeVocabSize: Int
    public var layerNormEps: Float
    public var hiddenDropout: Float
    public var attentionDropout: Float
    public var padTokenId: Int

    /// Model types whose checkpoints share BERT's layout and computation.
    public static let supportedModelTypes: Set<String> = ["bert"]

    public init(
        vocabSize: Int, hiddenSize: Int, layers: Int, heads: Int, intermediateSize: Int,
        maxPositions: Int = 512, typeVocabSize: Int = 2, layerNormEps: Float = 1e-12,
        hiddenDropout: Float = 0.1, attentionDropout: Float = 0.1, padTokenId: Int = 0
    ) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.layers = layers
        self.heads = heads
        self.intermediateSize = intermediateSize
        self.maxPositions = maxPositions
        self.typeVocabSize = typeVocabSize
        self.layerNormEps = layerNormEps
        self.hiddenDropout = hiddenDropout
        self.attentionDropout = attentionDropout
        self.padTokenId = padTokenId
    }

    /// Reads and validates `config.json`; errors name the file and the field.
    public init(contentsOf path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw InputError(path, "cannot read")
        }
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw InputError(path, "not a JSON object")
        }
        func field<T>(_ key: String, _ type: T.Type, default value: T? = nil) throws -> T {
            guard let raw = json[key] else {
                if let value { return value }
                throw InputError(path, "missing field '\(key)'")
            }
            if T.self == Float.self, let number = raw as? NSNumber { return Float(number.doubleValue) as! T }
            guard let typed = raw as? T else { throw InputError(path, "field '\(key)' has the wrong type") }
            return typed
        }
        let modelType = try field("model_type", String.self)
        guard Self.supportedModelTypes.contains(modelType) else {
            throw InputError(path, "unsupported model_type '\(modelType)' (supported: \(Self.supportedModelTypes.sorted().joined(separator: ", ")))")
        }
        let activation = try field("hidden_act", String.self, default: "gelu")
        guard activation == "gelu" else {
            throw InputError(path, "unsupported hidden_act '\(activation)' (supported: gelu)")
        }
        let positions = try field("position_embedding_type", String.self, default: "absolute")
        guard positions == "absolute" else {
            throw InputError(path, "unsupported position_embedding_type '\(positions)' (supported: absolute)")
        }
        self.init(
            vocabSize: try field("vocab_size", Int.self),
            hiddenSize: try field("hidden_size", Int.self),
            layers: try field("num_hidden_layers", Int.self),
            heads: try field("num_attention_heads", Int.self),
            intermediateSize: try field("intermediate_size", Int.self),
            maxPositions: try field("max_position_embeddings", Int.self, default: 512),
            typeVocabSize: try field("type_vocab_size", Int.self, default: 2),
            layerNormEps: try field("layer_norm_eps", Float.self, default: 1e-12),
            hiddenDropout: try field("hidden_dropout_prob", Float.self, default: 0.1),
            attentionDropout: try field("attention_probs_dropout_prob", Float.self, default: 0.1),
            padTokenId: try field("pad_token_id", Int.self, default: 0))
        for (key, value) in [("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("num_hidden_layers", layers),
                             ("num_attention_heads", heads), ("intermediate_size", intermediateSize),
                             ("max_position_embeddings", maxPositions), ("type_vocab_size", typeVocabSize)]
        where value <= 0 {
            throw InputError(path, "field '\(key)' must be positive, not \(value)")
        }
        guard hiddenSize % heads == 0 else {
            throw InputError(path, "hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(heads)")
        }
    }

    /// Channels per attention head.
    public var headSize: Int { hiddenSize / heads }
}
