import Kernels

/// Tensors addressed by dotted names, in a fixed order.
///
/// Names match the checkpoint's (`encoder.layer.0.attention.self.query.weight`),
/// so loading, saving and selecting a trainable subset all speak the same names.
public struct Parameters {
    public private(set) var names: [String] = []
    private var byName: [String: Tensor] = [:]

    public init() {}

    /// Registers a new zero tensor under `name` and returns it.
    @discardableResult
    public mutating func make(_ name: String, _ shape: [Int]) -> Tensor {
        let tensor = Tensor(shape: shape)
        add(name, tensor)
        return tensor
    }

    /// Registers an existing tensor under `name`, which must be new.
    public mutating func add(_ name: String, _ tensor: Tensor) {
        precondition(byName[name] == nil, "parameter '\(name)' registered twice")
        names.append(name)
        byName[name] = tensor
    }

    public subscript(name: String) -> Tensor? { byName[name] }

    /// (name, tensor) pairs in registration order.
    public var entries: [(name: String, tensor: Tensor)] { names.map { ($0, byName[$0]!) } }

    /// Total number of scalars.
    public var scalarCount: Int { byName.values.reduce(0) { $0 + $1.count } }
}

/// A linear layer's weights in PyTorch's layout: weight (out, in), bias (out).
public struct LinearWeights {
    public let weight: Tensor
    public let bias: Tensor
    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

    /// Registers `prefix.weight` and `prefix.bias` in `parameters`.
    public init(_ prefix: String, inFeatures: Int, outFeatures: Int, in parameters: inout Parameters) {
        weight = parameters.make("\(prefix).weight", [outFeatures, inFeatures])
        bias = parameters.make("\(prefix).bias", [outFeatures])
    }
}

/// A LayerNorm's scale and shift, registered as `prefix.weight` and `prefix.bias`.
public struct LayerNormWeights {
    public let weight: Tensor
    public let bias: Tensor

    public init(_ prefix: String, channels: Int, in parameters: inout Parameters) {
        weight = parameters.make("\(prefix).weight", [channels])
        bias = parameters.make("\(prefix).bias", [channels])
        weight.buffer.update(repeating: 1)
    }
}
