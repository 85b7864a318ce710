import Foundation
import Testing

/// The outcome of a command run by a test.
struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
    var ok: Bool { status == 0 }
}

/// Runs commands for the integration tests: docker, docker-compose, the stackvault binary, GNU tar.
enum Shell {
    /// Runs `arguments` (found on PATH) and waits. Output is captured whole: only for small outputs.
    @discardableResult
    static func run(_ arguments: [String], environment: [String: String] = [:], input: String? = nil,
                    check: Bool = true) throws -> CommandResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let inputPipe = Pipe()
        process.standardInput = input == nil ? FileHandle.nullDevice : inputPipe
        try process.run()
        if let input {
            inputPipe.fileHandleForWriting.write(Data(input.utf8))
            try inputPipe.fileHandleForWriting.close()
        }
        // Read both pipes concurrently so a chatty command cannot block on a full pipe.
        nonisolated(unsafe) var errData = Data()
        let errReader = Thread { errData = err.fileHandleForReading.readDataToEndOfFile() }
        errReader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !errReader.isFinished { usleep(1000) }
        let result = CommandResult(status: process.terminationStatus,
                                   stdout: String(decoding: outData, as: UTF8.self),
                                   stderr: String(decoding: errData, as: UTF8.self))
        if check && !result.ok {
            throw TestFailure("command failed (\(result.status)): \(arguments.joined(separator: " "))\n"
                + "stdout: \(result.stdout.suffix(2000))\nstderr: \(result.stderr.suffix(4000))")
        }
        return result
    }

    /// Sends `signal` to `process` and waits for its exit; returns the exit status, or nil if it did not exit
    /// within `seconds` (it is then killed).
    static func signal(_ process: Process, _ signal: Int32, seconds: Double) -> Int32? {
        if process.isRunning { kill(process.processIdentifier, signal) }
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        return process.terminationStatus
    }

    /// `sh -c script` on the host.
    @discardableResult
    static func sh(_ script: String, check: Bool = true) throws -> CommandResult {
        try run(["sh", "-c", script], check: check)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
