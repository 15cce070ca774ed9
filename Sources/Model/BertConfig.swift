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
    /// Dropout before a task's classifier (nil: `hiddenDropout`, as transformers' BERT heads).
    public var classifierDropout: Float?
    public var padTokenId: Int

    /// Model types whose checkpoints share BERT's layout and computation.
    public static let supportedModelTypes: Set<String> = ["bert"]

    public init(
        vocabSize: Int, hiddenSize: Int, layers: Int, heads: Int, intermediateSize: Int,
        maxPositions: Int = 512, typeVocabSize: Int = 2, layerNormEps: Float = 1e-12,
        hiddenDropout: Float = 0.1, attentionDropout: Float = 0.1, classifierDropout: Float? = nil,
        padTokenId: Int = 0
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
        self.classifierDropout = classifierDropout
        self.padTokenId = padTokenId
    }

    /// Reads and validates `config.json`; errors name the file and the field.
    public init(contentsOf path: String) throws {
        self = try JSONFile.decode(BertConfig.self, from: path)
        try validate(path)
    }

    private func validate(_ path: String) throws {
        for (key, value) in [("vocab_size", vocabSize), ("hidden_size", hiddenSize), ("num_hidden_layers", layers),
                             ("num_attention_heads", heads), ("intermediate_size", intermediateSize),
                             ("max_position_embeddings", maxPositions), ("type_vocab_size", typeVocabSize)]
        where value <= 0 {
            throw InputError(path, "field '\(key)' must be positive, not \(value)")
        }
        guard typeVocabSize >= 2 else {
            throw InputError(path, "type_vocab_size must be at least 2 (text pairs use token type 1), not \(typeVocabSize)")
        }
        for (key, value) in [("hidden_dropout_prob", hiddenDropout), ("attention_probs_dropout_prob", attentionDropout),
                             ("classifier_dropout", headDropout)]
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

    /// Dropout before a task's classifier: `classifier_dropout`, else `hidden_dropout_prob`.
    public var headDropout: Float { classifierDropout ?? hiddenDropout }

    /// Channels per attention head.
    public var headSize: Int { hiddenSize / heads }
}

extension BertConfig: Decodable {
    private enum CodingKeys: String, CodingKey {
        case modelType = "model_type", hiddenAct = "hidden_act", positionEmbeddingType = "position_embedding_type"
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", layers = "num_hidden_layers"
        case heads = "num_attention_heads", intermediateSize = "intermediate_size"
        case maxPositions = "max_position_embeddings", typeVocabSize = "type_vocab_size", layerNormEps = "layer_norm_eps"
        case hiddenDropout = "hidden_dropout_prob", attentionDropout = "attention_probs_dropout_prob"
        case classifierDropout = "classifier_dropout"
        case padTokenId = "pad_token_id"
    }

    /// Transformers' `config.json`: the sizes are required, the rest has BERT's defaults; a
    /// model type, activation or position embedding PTune does not compute is refused.
    public init(from decoder: Decoder) throws {
        let fields = try decoder.container(keyedBy: CodingKeys.self)
        func refuse(_ key: CodingKeys, _ value: String, supported: [String]) -> Error {
            DecodingError.dataCorruptedError(forKey: key, in: fields, debugDescription:
                "unsupported \(key.rawValue) '\(value)' (supported: \(supported.joined(separator: ", ")))")
        }
        let modelType = try fields.decode(String.self, forKey: .modelType)
        guard Self.supportedModelTypes.contains(modelType) else {
            throw refuse(.modelType, modelType, supported: Self.supportedModelTypes.sorted())
        }
        for (key, supported) in [(CodingKeys.hiddenAct, "gelu"), (.positionEmbeddingType, "absolute")] {
            let value = try fields.decodeIfPresent(String.self, forKey: key) ?? supported
            guard value == supported else { throw refuse(key, value, supported: [supported]) }
        }
        self.init(
            vocabSize: try fields.decode(Int.self, forKey: .vocabSize),
            hiddenSize: try fields.decode(Int.self, forKey: .hiddenSize),
            layers: try fields.decode(Int.self, forKey: .layers),
            heads: try fields.decode(Int.self, forKey: .heads),
            intermediateSize: try fields.decode(Int.self, forKey: .intermediateSize),
            maxPositions: try fields.decodeIfPresent(Int.self, forKey: .maxPositions) ?? 512,
            typeVocabSize: try fields.decodeIfPresent(Int.self, forKey: .typeVocabSize) ?? 2,
            layerNormEps: try fields.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? 1e-12,
            hiddenDropout: try fields.decodeIfPresent(Float.self, forKey: .hiddenDropout) ?? 0.1,
            attentionDropout: try fields.decodeIfPresent(Float.self, forKey: .attentionDropout) ?? 0.1,
            classifierDropout: try fields.decodeIfPresent(Float.self, forKey: .classifierDropout),
            padTokenId: try fields.decodeIfPresent(Int.self, forKey: .padTokenId) ?? 0)
    }
}
