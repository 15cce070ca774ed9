#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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

/// Per-channel scaling (IA3's learned vectors): out (rows, channels) = inp · scale (channels).
public func scaleChannelsForward(
    out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, scale: UnsafePointer<Float>, rows: Int, channels: Int
) {
    for r in 0..<rows {
        let (o, x) = (out + r * channels, inp + r * channels)
        for c in 0..<channels { o[c] = x[c] * scale[c] }
    }
}

/// Backward of `scaleChannelsForward`: dscale (channels) += Σ_rows dout · inp and dinp (rows,
/// channels) = dout · scale (or += with `accumulate`), each when given.
public func scaleChannelsBackward(
    dinp: UnsafeMutablePointer<Float>?, dscale: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
    inp: UnsafePointer<Float>, scale: UnsafePointer<Float>, rows: Int, channels: Int, accumulate: Bool
) {
    for r in 0..<rows {
        let (g, x) = (dout + r * channels, inp + r * channels)
        if let dscale { for c in 0..<channels { dscale[c] += g[c] * x[c] } }
        guard let d = dinp.map({ $0 + r * channels }) else { continue }
        if accumulate {
            for c in 0..<channels { d[c] += g[c] * scale[c] }
        } else {
            for c in 0..<channels { d[c] = g[c] * scale[c] }
        }
    }
}

private let inverseSqrt2: Float = 0.70710678118654752
private let inverseSqrt2Pi: Float = 0.39894228040143268

/// erf(x) from Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7, smaller in the
/// tails, where it is proportional to e), given e = exp(−x²) computed by the caller, who needs
/// it too: one exponential per element in GELU's forward and backward, no library call, and
/// it vectorizes (glibc's `erff` took a fifth of a training step).
@inline(__always)
func erf(_ x: Float, expMinusSquare e: Float) -> Float {
    let t = 1 / (1 + 0.3275911 * abs(x))
    var p: Float = 1.061405429
    p = -1.453152027 + t * p
    p = 1.421413741 + t * p
    p = -0.284496736 + t * p
    p = 0.254829592 + t * p
    let erfc = t * p * e
    return x >= 0 ? 1 - erfc : erfc - 1
}

/// Exact GELU, as BERT's "gelu": out = x · Φ(x) = 0.5 · x · (1 + erf(x / √2)).
public func geluForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
    parallelFor(count, minimumChunk: 4096) { range in
        for i in range { out[i] = gelu(inp[i]) }
    }
}

/// GELU rounded to bfloat16, for an output that only a bfloat16 product reads: one pass where
/// float32 GELU and its rounding before the product took two and a float32 copy.
public func geluForward(out: UnsafeMutablePointer<UInt16>, inp: UnsafePointer<Float>, count: Int) {
    parallelFor(count, minimumChunk: 4096) { range in
        for i in range { out[i] = bfloat16Bits(gelu(inp[i])) }
    }
}

@inline(__always)
private func gelu(_ x: Float) -> Float {
    let z = x * inverseSqrt2
    return 0.5 * x * (1 + erf(z, expMinusSquare: fastExp(-z * z)))
}

/// GELU backward, in place (its output's gradient is not needed again, and this saves a
/// (B, T, F) buffer): d ← d · (Φ(x) + x · φ(x)).
public func geluBackward(_ d: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
    parallelFor(count, minimumChunk: 4096) { range in
        for i in range {
            let x = inp[i], z = x * inverseSqrt2
            let e = fastExp(-z * z)   // exp(−x²/2): in the density and in erf
            let cdf = 0.5 * (1 + erf(z, expMinusSquare: e))
            d[i] *= cdf + x * inverseSqrt2Pi * e
        }
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
