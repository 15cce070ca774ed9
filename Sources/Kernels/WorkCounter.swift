/// Counts the floating-point work of the matrix products, from their shapes (2 per
/// multiply-add), so a benchmark can report the achieved GFLOP/s of a whole step.
/// Products are counted where they are issued, before any split over threads.
public enum WorkCounter {
    /// Operations counted since the last reset.
    public nonisolated(unsafe) static var operations: Double = 0

    public static func reset() { operations = 0 }

    @inline(__always)
    static func add(_ m: Int, _ n: Int, _ k: Int) { operations += 2 * Double(m) * Double(n) * Double(k) }
}
