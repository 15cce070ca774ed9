import Kernels

/// A named tensor that may train: its gradient exists only while it is trainable,
/// so frozen weights cost no gradient memory and no gradient work.
public final class Parameter {
    /// Dotted name, as in the checkpoint or adapter file (`encoder.layer.0.attention.self.query.weight`).
    public let name: String
    public let value: Tensor
    /// The gradient, accumulated by backward passes; nil while frozen.
    public private(set) var gradient: Tensor?

    public init(_ name: String, _ value: Tensor) {
        self.name = name
        self.value = value
    }

    public var isTrainable: Bool { gradient != nil }
    public var shape: [Int] { value.shape }

    /// Makes the parameter trainable (allocating a zero gradient) or frozen (dropping it).
    public func setTrainable(_ trainable: Bool) {
        if trainable, gradient == nil { gradient = Tensor(shape: value.shape) }
        if !trainable { gradient = nil }
    }
}

/// Parameters addressed by dotted names, in a fixed order.
///
/// Names match the checkpoint's, so loading, saving and choosing a trainable
/// subset all speak the same names; the optimizer, the gradient exchange and the
/// adapter files iterate `trainable`.
public struct Parameters {
    public private(set) var all: [Parameter] = []
    private var byName: [String: Parameter] = [:]

    public init() {}

    /// Registers a new zero tensor under `name` and returns it.
    @discardableResult
    public mutating func make(_ name: String, _ shape: [Int]) -> Parameter {
        let parameter = Parameter(name, Tensor(shape: shape))
        add(parameter)
        return parameter
    }

    /// Registers a parameter, whose name must be new.
    public mutating func add(_ parameter: Parameter) {
        precondition(byName[parameter.name] == nil, "parameter '\(parameter.name)' registered twice")
        all.append(parameter)
        byName[parameter.name] = parameter
    }

    public subscript(name: String) -> Parameter? { byName[name] }

    public var names: [String] { all.map(\.name) }

    /// (name, value) pairs in order, as safetensors files take them.
    public var named: [(name: String, tensor: Tensor)] { all.map { ($0.name, $0.value) } }

    /// The parameters that currently train, in order.
    public var trainable: [Parameter] { all.filter(\.isTrainable) }

    /// Total number of scalars.
    public var scalarCount: Int { all.reduce(0) { $0 + $1.value.count } }

    /// Zeroes every trainable parameter's gradient.
    public func zeroGradients() { for parameter in all { parameter.gradient?.zero() } }
}

extension Parameter {
    /// How far a backward pass must have gone for this gradient to be final, in encoder layers
    /// (backward runs from the last layer down): `Int.max` for the pooler and the head, which
    /// are done before any layer; `n` for `encoder.layer.n.…`; nil for the rest (embeddings,
    /// prompts and their encoders), which are final only when the pass ends.
    public var gradientFinalAfterLayer: Int? {
        if name.hasPrefix("classifier.") || name.hasPrefix("pooler.") { return Int.max }
        let marker = "encoder.layer."
        guard let range = name.range(of: marker) else { return nil }
        return Int(name[range.upperBound...].prefix { $0.isNumber })
    }
}
