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
        let fields = try JSONFields(contentsOf: path)
        let modelType = try fields.string("model_type")
        guard Self.supportedModelTypes.contains(modelType) else {
            throw InputError(path, "unsupported model_type '\(modelType)' (supported: \(Self.supportedModelTypes.sorted().joined(separator: ", ")))")
        }
        let activation = try fields.string("hidden_act", default: "gelu")
        guard activation == "gelu" else {
            throw InputError(path, "unsupported hidden_act '\(activation)' (supported: gelu)")
        }
        let positions = try fields.string("position_embedding_type", default: "absolute")
        guard positions == "absolute" else {
            throw InputError(path, "unsupported position_embedding_type '\(positions)' (supported: absolute)")
        }
        self.init(
            vocabSize: try fields.int("vocab_size"),
            hiddenSize: try fields.int("hidden_size"),
            layers: try fields.int("num_hidden_layers"),
            heads: try fields.int("num_attention_heads"),
            intermediateSize: try fields.int("intermediate_size"),
            maxPositions: try fields.int("max_position_embeddings", default: 512),
            typeVocabSize: try fields.int("type_vocab_size", default: 2),
            layerNormEps: try fields.float("layer_norm_eps", default: 1e-12),
            hiddenDropout: try fields.float("hidden_dropout_prob", default: 0.1),
            attentionDropout: try fields.float("attention_probs_dropout_prob", default: 0.1),
            padTokenId: try fields.int("pad_token_id", default: 0))
        for (key, value) in [("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("num_hidden_layers", layers),
                             ("num_attention_heads", heads), ("intermediate_size", intermediateSize),
                             ("max_position_embeddings", maxPositions), ("type_vocab_size", typeVocabSize)]
        where value <= 0 {
            throw InputError(path, "field '\(key)' must be positive, not \(value)")
        }
        guard typeVocabSize >= 2 else {
            throw InputError(path, "type_vocab_size must be at least 2 (text pairs use token type 1), not \(typeVocabSize)")
        }
        for (key, value) in [("hidden_dropout_prob", hiddenDropout), ("attention_probs_dropout_prob", attentionDropout)]
        where !(0..<1).contains(value) {
            throw InputError(path, "field '\(key)' must be in [0, 1), not \(value)")
        }
        guard layerNormEps > 0, layerNormEps.isFinite else {
            throw InputError(path, "field 'layer_norm_eps' must be a positive number, not \(layerNormEps)")
        }
        guard (0..<vocabSize).contains(padTokenId) else {
            throw InputError(path, "pad_token_id \(padTokenId) is outside the vocabulary of \(vocabSize)")
        }
        guard hiddenSize % heads == 0 else {
            throw InputError(path, "hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(heads)")
        }
    }

    /// Channels per attention head.
    public var headSize: Int { hiddenSize / heads }
}
