#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Row-wise softmax in place over x (rows, columns), where columns whose
/// `mask` entry is 0 get probability exactly 0 (as an additive −∞ would give).
/// `mask` (columns, 1 or 0) is shared by every row.
/// A row with every column masked becomes all zeros rather than NaN.
public func maskedSoftmaxForward(
    _ x: UnsafeMutablePointer<Float>, mask: UnsafePointer<Float>, rows: Int, columns: Int
) {
    for r in 0..<rows {
        let row = x + r * columns
        var maxValue = -Float.infinity
        for c in 0..<columns where mask[c] != 0 { maxValue = max(maxValue, row[c]) }
        guard maxValue > -Float.infinity else {
            row.update(repeating: 0, count: columns)
            continue
        }
        // Branch-free so it vectorizes: masked columns are multiplied by their 0.
        for c in 0..<columns { row[c] = fastExp(row[c] - maxValue) * mask[c] }
        var sum: Float = 0
        for c in 0..<columns { sum += row[c] }
        let inverse = 1 / sum
        for c in 0..<columns { row[c] *= inverse }
    }
}

/// Softmax backward from its output p: dinp += p · (dout − Σ dout·p), row by row.
/// - Parameters: dinp, dout, probs (rows, columns).
public func softmaxBackward(
    dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, probs: UnsafePointer<Float>,
    rows: Int, columns: Int
) {
    for r in 0..<rows {
        let p = probs + r * columns, dy = dout + r * columns, dx = dinp + r * columns
        var dot: Float = 0
        for c in 0..<columns { dot += dy[c] * p[c] }
        for c in 0..<columns { dx[c] += p[c] * (dy[c] - dot) }
    }
}
