#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// out = a + b, elementwise (residual connections).
public func addForward(
    out: UnsafeMutablePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>, count: Int
) {
    for i in 0..<count { out[i] = a[i] + b[i] }
}

/// Accumulates `source` into `destination` (the backward of a sum, and of a copy).
public func accumulate(
    into destination: UnsafeMutablePointer<Float>, _ source: UnsafePointer<Float>, count: Int
) {
    for i in 0..<count { destination[i] += source[i] }
}

/// Adds a bias to every row: x (rows, channels) += bias (channels).
public func biasAddForward(
    _ x: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, rows: Int, channels: Int
) {
    for r in 0..<rows {
        let row = x + r * channels
        for c in 0..<channels { row[c] += bias[c] }
    }
}

/// Bias backward: dbias (channels) += the column sums of dout (rows, channels).
public func biasAddBackward(
    dbias: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, rows: Int, channels: Int
) {
    for r in 0..<rows {
        let row = dout + r * channels
        for c in 0..<channels { dbias[c] += row[c] }
    }
}

private let inverseSqrt2: Float = 0.70710678118654752
private let inverseSqrt2Pi: Float = 0.39894228040143268

/// Exact GELU, as BERT's "gelu": out = x · Φ(x) = 0.5 · x · (1 + erf(x / √2)).
public func geluForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
    for i in 0..<count {
        let x = inp[i]
        out[i] = 0.5 * x * (1 + erff(x * inverseSqrt2))
    }
}

/// GELU backward: dinp += dout · (Φ(x) + x · φ(x)).
public func geluBackward(
    dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, count: Int
) {
    for i in 0..<count {
        let x = inp[i]
        let cdf = 0.5 * (1 + erff(x * inverseSqrt2))
        let pdf = inverseSqrt2Pi * expf(-0.5 * x * x)
        dinp[i] += dout[i] * (cdf + x * pdf)
    }
}

/// out = tanh(x).
public func tanhForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
    for i in 0..<count { out[i] = tanhf(inp[i]) }
}

/// tanh backward from its output y: dinp += dout · (1 - y²).
public func tanhBackward(
    dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, out: UnsafePointer<Float>, count: Int
) {
    for i in 0..<count { dinp[i] += dout[i] * (1 - out[i] * out[i]) }
}

/// out = max(x, 0).
public func reluForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
    for i in 0..<count { out[i] = max(inp[i], 0) }
}

/// ReLU backward: dinp += dout where x > 0.
public func reluBackward(
    dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, count: Int
) {
    for i in 0..<count where inp[i] > 0 { dinp[i] += dout[i] }
}
