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

/// The built `ptune`, or a skip saying how to build it.
public func ptunePath() throws -> String {
    let executable = productsFolder.appendingPathComponent("ptune")
    guard FileManager.default.isExecutableFile(atPath: executable.path) else {
        throw XCTSkip("\(executable.path) is not built; `swift build --build-tests` builds it")
    }
    return executable.path
}

/// The environment a child starts with: the test process may itself be a one-process MPI world,
/// whose OMPI_/PMIX_ variables would make a child `ptune` or `mpirun` believe it is part of that job.
private func childEnvironment(_ extra: [String: String]) -> [String: String] {
    ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("OMPI_") && !$0.key.hasPrefix("PMIX_") }
        .merging(extra) { $1 }
}

/// Starts a program without waiting for it; standard error goes to `errorPath`, output nowhere.
public func startProcess(_ path: String, _ arguments: [String], environment: [String: String] = [:],
                         errorPath: String) throws -> Process {
    FileManager.default.createFile(atPath: errorPath, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    process.environment = childEnvironment(environment)
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle(forWritingAtPath: errorPath)
    try process.run()
    return process
}

/// Polls until `condition` holds; fails the test if the process ends first.
public func waitWhileRunning(_ process: Process, file: StaticString = #filePath, line: UInt = #line,
                             until condition: () -> Bool) {
    while !condition() {
        guard process.isRunning else {
            return XCTFail("the process ended before the condition held", file: file, line: line)
        }
        usleep(20_000)
    }
}

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
    process.environment = childEnvironment(environment)
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
