import Kernels
import TestSupport
import XCTest

final class AttentionTests: XCTestCase {
    /// Two sequences, three queries, three keys of their own (a padded one in the second sequence)
    /// and, with `prefix`, two prefix rows shared by both sequences, read as a column slice of a
    /// wider tensor; two heads.
    private func check(dropout: SequenceDropout?, prefix: Bool, line: UInt = #line) {
        let P = prefix ? 2 : 0, S = P + 3
        let shape = AttentionShape(batch: 2, queries: 3, keys: 3, prefix: P, channels: 4, heads: 2)
        var random = SeededRandom(seed: 12)
        let q = random.tensor([2, 3, 4]), k = random.tensor([2, 3, 4]), v = random.tensor([2, 3, 4])
        // Prefix rows of stride 10: keys in columns 1..<5, values in 5..<9.
        let prefixRows = random.tensor([max(P, 1), 10])
        let attendPrefix = prefix ? AttentionPrefix(keys: prefixRows.data + 1, values: prefixRows.data + 5, stride: 10) : nil
        let keyMask = Tensor(shape: [2, S], values: [Float](repeating: 1, count: 2 * S - 1) + [0])
        let out = Tensor(shape: [2, 3, 4]), probs = Tensor(shape: [shape.probabilityCount])
        let forwardScratch = Tensor(shape: [shape.forwardScratchCount(withDropout: true)])
        let forward = {
            attentionForward(out: out.data, probs: probs.data, q: q.data, k: k.data, v: v.data, prefix: attendPrefix,
                             keyMask: keyMask.data, shape: shape, dropout: dropout, scratch: forwardScratch.data)
        }
        forward()
        for row in 6..<12 { XCTAssertEqual(probs[row * S + S - 1], 0, "padded key gets no attention", line: line) }
        let dout = random.tensor([2, 3, 4])
        let dq = Tensor(shape: [2, 3, 4]), dk = Tensor(shape: [2, 3, 4]), dv = Tensor(shape: [2, 3, 4])
        let prefixKeyShares = Tensor(shape: [2, max(P, 1), 4]), prefixValueShares = Tensor(shape: [2, max(P, 1), 4])
        let scratch = Tensor(shape: [shape.scratchCount])
        attentionBackward(dq: dq.data, dk: dk.data, dv: dv.data,
                          prefixGradients: prefix ? (prefixKeyShares.data, prefixValueShares.data) : nil,
                          dout: dout.data, probs: probs.data, q: q.data, k: k.data, v: v.data, prefix: attendPrefix,
                          scratch: scratch.data, shape: shape, dropout: dropout)
        let loss = { forward(); return weightedSum(out.data, dout) }
        checkGradient("attention q", input: q, analytic: dq, epsilon: 1e-3, line: line, loss: loss)
        checkGradient("attention k", input: k, analytic: dk, epsilon: 1e-3, line: line, loss: loss)
        checkGradient("attention v", input: v, analytic: dv, epsilon: 1e-3, line: line, loss: loss)
        guard prefix else { return }
        // The prefix's gradient is the sum of the sequences' shares, in its own columns.
        let dPrefix = Tensor(shape: prefixRows.shape)
        for (shares, column) in [(prefixKeyShares, 1), (prefixValueShares, 5)] {
            for b in 0..<2 {
                for p in 0..<P { accumulate(into: dPrefix.data + p * 10 + column, shares.data + (b * P + p) * 4, count: 4) }
            }
        }
        checkGradient("attention prefix", input: prefixRows, analytic: dPrefix, epsilon: 1e-3, line: line, loss: loss)
    }

    func testAttentionBackwardMatchesFiniteDifferences() { check(dropout: nil, prefix: false) }

    func testAttentionWithDropoutBackwardMatchesFiniteDifferences() {
        check(dropout: SequenceDropout(rate: 0.3, seed: 5, keys: [7, 3]), prefix: false)
    }

    func testAttentionOverASharedPrefixBackwardMatchesFiniteDifferences() {
        check(dropout: nil, prefix: true)
        check(dropout: SequenceDropout(rate: 0.3, seed: 5, keys: [7, 3]), prefix: true)
    }
}
