import Foundation
import Kernels

/// One transformer layer's weights, named as in Hugging Face's `BertLayer`.
public struct BertLayerWeights {
    public let query, key, value, attentionOutput: LinearWeights
    public let attentionNorm: LayerNormWeights
    public let intermediate, output: LinearWeights
    public let outputNorm: LayerNormWeights

    init(index: Int, config: BertConfig, in parameters: inout Parameters) {
        let p = "encoder.layer.\(index)"
        let (c, f) = (config.hiddenSize, config.intermediateSize)
        query = LinearWeights("\(p).attention.self.query", inFeatures: c, outFeatures: c, in: &parameters)
        key = LinearWeights("\(p).attention.self.key", inFeatures: c, outFeatures: c, in: &parameters)
        value = LinearWeights("\(p).attention.self.value", inFeatures: c, outFeatures: c, in: &parameters)
        attentionOutput = LinearWeights("\(p).attention.output.dense", inFeatures: c, outFeatures: c, in: &parameters)
        attentionNorm = LayerNormWeights("\(p).attention.output.LayerNorm", channels: c, in: &parameters)
        intermediate = LinearWeights("\(p).intermediate.dense", inFeatures: c, outFeatures: f, in: &parameters)
        output = LinearWeights("\(p).output.dense", inFeatures: f, outFeatures: c, in: &parameters)
        outputNorm = LayerNormWeights("\(p).output.LayerNorm", channels: c, in: &parameters)
    }
}

/// The weights of a BERT encoder and pooler, addressable by checkpoint name.
public final class BertWeights {
    public let config: BertConfig
    /// Every tensor, named as in a Hugging Face checkpoint without the `bert.` prefix.
    public let parameters: Parameters
    public let wordEmbeddings, positionEmbeddings, tokenTypeEmbeddings: Tensor
    public let embeddingNorm: LayerNormWeights
    public let layers: [BertLayerWeights]
    public let pooler: LinearWeights

    /// Zero-initialised weights (LayerNorm scales 1) shaped by `config`.
    public init(config: BertConfig) {
        self.config = config
        var parameters = Parameters()
        let c = config.hiddenSize
        wordEmbeddings = parameters.make("embeddings.word_embeddings.weight", [config.vocabSize, c])
        positionEmbeddings = parameters.make("embeddings.position_embeddings.weight", [config.maxPositions, c])
        tokenTypeEmbeddings = parameters.make("embeddings.token_type_embeddings.weight", [config.typeVocabSize, c])
        embeddingNorm = LayerNormWeights("embeddings.LayerNorm", channels: c, in: &parameters)
        layers = (0..<config.layers).map { BertLayerWeights(index: $0, config: config, in: &parameters) }
        pooler = LinearWeights("pooler.dense", inFeatures: c, outFeatures: c, in: &parameters)
        self.parameters = parameters
    }

    /// Loads every tensor from a checkpoint, accepting names with or without a
    /// `bert.` prefix and the old `LayerNorm.gamma`/`beta` spelling.
    /// Errors name the file and the missing or mis-shaped tensor.
    public convenience init(config: BertConfig, checkpoint: SafeTensorsFile) throws {
        self.init(config: config)
        for (name, tensor) in parameters.entries {
            let stored = try Self.storedName(for: name, in: checkpoint)
            let info = try checkpoint.info(stored)
            guard info.shape == tensor.shape else {
                throw InputError(checkpoint.path, "tensor '\(stored)' has shape \(info.shape) but the config implies \(tensor.shape)")
            }
            try checkpoint.readFloats(stored, into: tensor.data)
        }
    }

    private static func storedName(for name: String, in checkpoint: SafeTensorsFile) throws -> String {
        var candidates = [name, "bert." + name]
        if name.contains("LayerNorm.") {
            let old = name.replacingOccurrences(of: "LayerNorm.weight", with: "LayerNorm.gamma")
                .replacingOccurrences(of: "LayerNorm.bias", with: "LayerNorm.beta")
            candidates += [old, "bert." + old]
        }
        guard let found = candidates.first(where: { checkpoint.tensors[$0] != nil }) else {
            throw InputError(checkpoint.path, "missing tensor '\(name)'")
        }
        return found
    }
}
