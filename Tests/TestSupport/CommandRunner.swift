import Foundation
import XCTest

/// What a run of the `ptune` binary printed and how it exited.
public struct CommandResult {
    public let status: Int32
    public let standardOutput: String
    public let standardError: String
    /// Whether a signal ended the program (a crash, unless the test sent it).
    public let signaled: Bool
}

/// The folder holding the built products (`ptune` beside the test bundle).
public let productsFolder: URL = {
    if let bundle = Bundle.allBundles.first(where: { $0.bundlePath.hasSuffix(".xctest") }) {
        return bundle.bundleURL.deletingLastPathComponent()
    }
    return Bundle.main.bundleURL
}()

/// Runs a built executable with arguments and standard input; returns what it printed.
public func runProduct(_ name: String, _ arguments: [String], input: String = "",
                       environment: [String: String] = [:]) throws -> CommandResult {
    let executable = productsFolder.appendingPathComponent(name)
    guard FileManager.default.isExecutableFile(atPath: executable.path) else {
        throw XCTSkip("\(executable.path) is not built; `swift build --build-tests` builds it")
    }
    return try runProcess(executable.path, arguments, input: input, environment: environment)
}

/// Runs any program to its end. Standard input and error go through temporary files,
/// so only standard output is a pipe and neither side can block on a full buffer.
public func runProcess(_ path: String, _ arguments: [String], input: String = "",
                       environment: [String: String] = [:]) throws -> CommandResult {
    let scratch = NSTemporaryDirectory() + "ptune-run-" + UUID().uuidString
    let inputPath = scratch + ".in", errorPath = scratch + ".err"
    defer {
        try? FileManager.default.removeItem(atPath: inputPath)
        try? FileManager.default.removeItem(atPath: errorPath)
    }
    FileManager.default.createFile(atPath: inputPath, contents: Data(input.utf8))
    FileManager.default.createFile(atPath: errorPath, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    // The test process may itself be a one-process MPI world, whose OMPI_/PMIX_ variables would
    // make a child `ptune` or `mpirun` believe it is part of that job: the children start clean.
    let inherited = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("OMPI_") && !$0.key.hasPrefix("PMIX_") }
    process.environment = inherited.merging(environment) { $1 }
    let stdout = Pipe()
    process.standardInput = FileHandle(forReadingAtPath: inputPath)
    process.standardOutput = stdout
    process.standardError = FileHandle(forWritingAtPath: errorPath)
    try process.run()
    let out = stdout.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    let err = FileManager.default.contents(atPath: errorPath) ?? Data()
    return CommandResult(status: process.terminationStatus,
                         standardOutput: String(decoding: out, as: UTF8.self),
                         standardError: String(decoding: err, as: UTF8.self),
                         signaled: process.terminationReason == .uncaughtSignal)
}
