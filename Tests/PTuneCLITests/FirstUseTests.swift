import Foundation
import TestSupport
import XCTest

/// What a first-time user runs besides `ptune` itself: `scripts/install.sh` and `launch.sh --resume`.
final class FirstUseTests: XCTestCase {
    /// The repository the tests come from (Tests/Fixtures lies in it), whatever the build path.
    private var repository: String {
        URL(fileURLWithPath: fixturesFolder).deletingLastPathComponent().deletingLastPathComponent().path
    }

    private var ptune: String { productsFolder.appendingPathComponent("ptune").path }

    func testInstallPutsPTuneOnThePath() throws {
        let prefix = try temporaryFolder(self) + "/prefix"
        let install = try runProcess(repository + "/scripts/install.sh", ["--prefix", prefix, "--binary", ptune],
                                     environment: ["PATH": "/usr/bin:/bin"])
        XCTAssertEqual(install.status, 0, install.standardError)
        XCTAssert(install.standardOutput.contains("export PATH=\"\(prefix)/bin:$PATH\""), install.standardOutput)
        // As typed after the install: `ptune` found on the PATH, from another folder.
        let typed = try runProcess("/usr/bin/env", ["ptune", "params", "--method", "ia3", "--model", try pretrainedModelFolder()],
                                   environment: ["PATH": "\(prefix)/bin:/usr/bin:/bin"])
        XCTAssertEqual(typed.status, 0, typed.standardError)
        XCTAssert(typed.standardOutput.contains("trainable 16898 of"), typed.standardOutput)
        // Installing again replaces the link; a wrong binary is refused.
        XCTAssertEqual(try runProcess(repository + "/scripts/install.sh", ["--prefix", prefix, "--binary", ptune]).status, 0)
        let wrong = try runProcess(repository + "/scripts/install.sh", ["--prefix", prefix, "--binary", prefix + "/none"])
        XCTAssertNotEqual(wrong.status, 0)
        XCTAssert(wrong.standardError.contains("is not an executable"), wrong.standardError)
    }

    /// `./launch.sh --resume` on a finished pipeline keeps every stage and task; without it, the
    /// same `--out` is refused with the hint.
    func testLaunchResumeKeepsAFinishedPipeline() throws {
        let folder = try moodTask(self)
        let out = folder + "/pipeline"
        let launch = { (extra: [String]) in
            try runProcess(self.repository + "/launch.sh", ["--debug", "--out", out] + extra + [
                "--", "--model", try pretrainedModelFolder(), "--tasks", folder + "/mood.json", "--pretrain-steps", "2",
                "--pretrain-batch-size", "4", "--prompt-length", "2", "--max-steps", "2", "--batch-size", "4",
                "--eval-every", "2",
            ], environment: ["PTUNE_BINARY": self.ptune, "PTUNE_THREADS": "1"])
        }
        let first = try launch([])
        XCTAssertEqual(first.status, 0, first.standardError)
        XCTAssert(FileManager.default.fileExists(atPath: out + "/registry/manifest.json"))
        let again = try launch([])
        XCTAssertNotEqual(again.status, 0, "a finished --out is not silently redone")
        XCTAssert(again.standardError.contains("--resume"), again.standardError)
        let resumed = try launch(["--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.standardError)
        XCTAssertFalse(resumed.standardError.contains("step 2/2"), "nothing is trained again: \(resumed.standardError)")
        XCTAssert(resumed.standardOutput.contains("| mood |"), resumed.standardOutput)
    }
}
