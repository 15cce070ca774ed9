import Foundation
import Kernels

/// One transformer layer's weights, named as in Hugging Face's `BertLayer`.
public struct BertLayerWeights {
    public let query, key, value, attentionOutput: Linear
    public let attentionNorm: LayerNorm
    public let intermediate, output: Linear
    public let outputNorm: LayerNorm

    init(index: Int, config: BertConfig, in parameters: inout Parameters) {
        let p = "encoder.layer.\(index)"
        let (c, f, eps) = (config.hiddenSize, config.intermediateSize, config.layerNormEps)
        query = Linear("\(p).attention.self.query", inFeatures: c, outFeatures: c, in: &parameters)
        key = Linear("\(p).attention.self.key", inFeatures: c, outFeatures: c, in: &parameters)
        value = Linear("\(p).attention.self.value", inFeatures: c, outFeatures: c, in: &parameters)
        attentionOutput = Linear("\(p).attention.output.dense", inFeatures: c, outFeatures: c, in: &parameters)
        attentionNorm = LayerNorm("\(p).attention.output.LayerNorm", channels: c, eps: eps, in: &parameters)
        intermediate = Linear("\(p).intermediate.dense", inFeatures: c, outFeatures: f, in: &parameters)
        output = Linear("\(p).output.dense", inFeatures: f, outFeatures: c, in: &parameters)
        outputNorm = LayerNorm("\(p).output.LayerNorm", channels: c, eps: eps, in: &parameters)
    }

    /// The layer's linear layers by their module path inside the layer.
    public var linears: [(module: String, linear: Linear)] {
        [("attention.self.query", query), ("attention.self.key", key), ("attention.self.value", value),
         ("attention.output.dense", attentionOutput), ("intermediate.dense", intermediate), ("output.dense", output)]
    }

    /// Whether the self-attention block (projections, output, its LayerNorm) has anything trainable.
    var attentionBlockTrains: Bool {
        [query, key, value, attentionOutput].contains(where: \.hasTrainable) || attentionNorm.hasTrainable
    }

    /// Whether the feed-forward block (both linears, its LayerNorm) has anything trainable.
    var feedForwardBlockTrains: Bool {
        intermediate.hasTrainable || output.hasTrainable || outputNorm.hasTrainable
    }
}

/// The weights of a BERT encoder and pooler, addressable by checkpoint name.
public final class BertWeights {
    public let config: BertConfig
    /// Every tensor, named as in a Hugging Face checkpoint without the `bert.` prefix.
    public let parameters: Parameters
    public let wordEmbeddings, positionEmbeddings, tokenTypeEmbeddings: Parameter
    public let embeddingNorm: LayerNorm
    public let layers: [BertLayerWeights]
    public let pooler: Linear

    /// Zero-initialised weights (LayerNorm scales 1) shaped by `config`.
    public init(config: BertConfig) {
        self.config = config
        var parameters = Parameters()
        let c = config.hiddenSize
        wordEmbeddings = parameters.make("embeddings.word_embeddings.weight", [config.vocabSize, c])
        positionEmbeddings = parameters.make("embeddings.position_embeddings.weight", [config.maxPositions, c])
        tokenTypeEmbeddings = parameters.make("embeddings.token_type_embeddings.weight", [config.typeVocabSize, c])
        embeddingNorm = LayerNorm("embeddings.LayerNorm", channels: c, eps: config.layerNormEps, in: &parameters)
        layers = (0..<config.layers).map { BertLayerWeights(index: $0, config: config, in: &parameters) }
        pooler = Linear("pooler.dense", inFeatures: c, outFeatures: c, in: &parameters)
        self.parameters = parameters
    }

    /// Keeps every frozen matrix (the linear layers' weights, the embedding tables) in bfloat16
    /// only, as bf16 precision computes with them; biases and LayerNorms stay float32.
    public func storeFrozenMatricesInBFloat16() {
        for parameter in parameters.all where parameter.shape.count == 2 { parameter.storeInBFloat16() }
    }

    /// Loads every tensor from a checkpoint, accepting names with or without a
    /// `bert.` prefix and the old `LayerNorm.gamma`/`beta` spelling.
    /// Errors name the file and the missing or mis-shaped tensor.
    public convenience init(config: BertConfig, checkpoint: SafeTensorsFile) throws {
        // Every size of the config meets a tensor of the file before anything is allocated by it,
        // so a config's huge number fails here as a mismatch, not as an allocation.
        let (c, last) = (config.hiddenSize, config.layers - 1)
        for (name, shape) in [("embeddings.word_embeddings.weight", [config.vocabSize, c]),
                              ("embeddings.position_embeddings.weight", [config.maxPositions, c]),
                              ("embeddings.token_type_embeddings.weight", [config.typeVocabSize, c]),
                              ("encoder.layer.\(last).intermediate.dense.weight", [config.intermediateSize, c])] {
            try Self.check(name, shape, in: checkpoint)
        }
        self.init(config: config)
        for parameter in parameters.all {
            try checkpoint.readFloats(try Self.check(parameter.name, parameter.shape, in: checkpoint),
                                      into: parameter.value.data)
        }
    }

    /// The checkpoint's name for tensor `name`, after checking it has `shape`.
    @discardableResult
    private static func check(_ name: String, _ shape: [Int], in checkpoint: SafeTensorsFile) throws -> String {
        let stored = try storedName(for: name, in: checkpoint)
        let info = try checkpoint.info(stored)
        guard info.shape == shape else {
            throw InputError(checkpoint.path, "tensor '\(stored)' has shape \(info.shape) but the config implies \(shape)")
        }
        return stored
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

    /// Every linear layer by module path (`encoder.layer.0.attention.self.query`, `pooler.dense`).
    public var linears: [(module: String, linear: Linear)] {
        layers.enumerated().flatMap { index, layer in
            layer.linears.map { ("encoder.layer.\(index).\($0.module)", $0.linear) }
        } + [("pooler.dense", pooler)]
    }

    /// Whether the embeddings (tables or their LayerNorm) train.
    var embeddingsTrain: Bool {
        wordEmbeddings.isTrainable || positionEmbeddings.isTrainable || tokenTypeEmbeddings.isTrainable
            || embeddingNorm.hasTrainable
    }
}
