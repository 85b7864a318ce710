/// A dump strategy whose archives a restore drill can replay into a throwaway container of the archived image and
/// check (`stackvault drill`, ``DrillEngine``). Directory strategies need nothing of this: a drill restores them
/// as `restore` does and compares their tree digest with the manifest's.
public protocol DrillStrategy: RestoreStrategy {
    /// The environment that makes a fresh container of the archived image start its server with credentials made
    /// for this drill (`password`: 32 random hex digits); the dump's own accounts take over once it is replayed,
    /// as on a real restore.
    func drillEnvironment(password: String) -> [String]

    /// Returns once the server in `container` (started from the image with `drillEnvironment`) is initialised
    /// and serves; throws when it does not within `timeout`, with the container's last words if it stopped.
    func waitUntilReady(_ container: ContainerDetails, docker: any DockerEngine, timeout: Duration) async throws

    /// What the server in `container` holds now, for the databases and tables `expected` lists: each database
    /// that exists, and each table that exists with its row count (`count(*)`). Tables and databases that do
    /// not exist are left out.
    func replayedContents(of expected: DumpContents, in container: ContainerDetails, docker: any DockerEngine)
        async throws -> DumpContents

    /// False for a table the server fills on its own (statistics, logs), whose row count after a replay need not
    /// be the dump's; its existence is still checked. Default: true.
    func comparesRows(of table: DumpContents.Table) -> Bool
}

extension DrillStrategy {
    public func comparesRows(of table: DumpContents.Table) -> Bool { true }
}
