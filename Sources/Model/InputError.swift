/// A problem with something the user gave: a file, a field, a line.
///
/// Its description is one line that names where the problem is and what it is,
/// which the command prints before exiting with a non-zero status.
public struct InputError: Error, CustomStringConvertible, Equatable {
    /// The file (or other source) the problem is in.
    public let source: String
    /// What is wrong, in words.
    public let problem: String

    public init(_ source: String, _ problem: String) {
        self.source = source
        self.problem = problem
    }

    public var description: String { "\(source): \(problem)" }
}
