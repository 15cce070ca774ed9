import Kernels

/// A named tensor that may train: its gradient exists only while it is trainable,
/// so frozen weights cost no gradient memory and no gradient work.
public final class Parameter {
    /// Dotted name, as in the checkpoint or adapter file (`encoder.layer.0.attention.self.query.weight`).
    public let name: String
    public let shape: [Int]
    /// The gradient, accumulated by backward passes; nil while frozen.
    public private(set) var gradient: Tensor?
    private var float32: Tensor?
    /// The value rounded to bfloat16, when a frozen weight is stored so (bf16 precision); the
    /// float32 value is then dropped, halving its memory.
    public private(set) var bfloat16: BFloat16Tensor?

    public init(_ name: String, _ value: Tensor) {
        self.name = name
        self.shape = value.shape
        float32 = value
    }

    /// The value in float32. Reading it from a parameter stored in bfloat16 widens it back (exactly:
    /// the model is then the rounded one) and drops the bfloat16 copy, so writes through it hold.
    public var value: Tensor {
        if let float32 { return float32 }
        let widened = bfloat16!.float32()
        float32 = widened
        bfloat16 = nil
        return widened
    }

    /// The value as the matrix products read it: bfloat16 when stored so, else float32.
    public var elements: MatrixElements {
        if let bfloat16 { return .bfloat16(UnsafePointer(bfloat16.data)) }
        return value.elements
    }

    public var isTrainable: Bool { gradient != nil }

    /// Makes the parameter trainable (allocating a zero gradient) or frozen (dropping it).
    public func setTrainable(_ trainable: Bool) {
        if trainable, gradient == nil { gradient = Tensor(shape: value.shape) }
        if !trainable { gradient = nil }
    }

    /// Keeps a frozen parameter in bfloat16 only, rounding its value; does nothing to a trainable one.
    public func storeInBFloat16() {
        guard !isTrainable, let float32 else { return }
        bfloat16 = BFloat16Tensor(rounding: float32)
        self.float32 = nil
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
    public var scalarCount: Int { all.reduce(0) { $0 + $1.shape.reduce(1, *) } }

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
