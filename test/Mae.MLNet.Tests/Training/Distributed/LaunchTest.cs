using Mae.MLNet.Training;
using Mae.MLNet.Runtime;

namespace Mae.MLNet.Tests.Training.Distributed;

/// <summary>
/// Launcher detection from environments written by hand the way each launcher sets them (Open MPI's mpirun, a Slurm
/// step under srun, a Slurm batch script, PMI-2, PMIx alone, torchrun), the check of the collective MPI formed against
/// what the launcher announced, the GPU of each rank and the gradient transport.
/// </summary>
[TestClass]
public class LaunchTest
{
    static MaeLaunchInfo Detect(params (string Name, string Value)[] variables)
    {
        var env = variables.ToDictionary(v => v.Name, v => v.Value);
        return MaeLaunchInfo.Detect(name => env.TryGetValue(name, out var v) ? v : null);
    }

    [TestMethod]
    public void EachLauncherIsReadFromItsOwnVariables()
    {
        // mpirun -np 4 (Open MPI also sets PMIX_RANK; its own variables win).
        Assert.AreEqual(new MaeLaunchInfo(MaeLauncher.Mpi, 3, 4, 1),
            Detect(("OMPI_COMM_WORLD_SIZE", "4"), ("OMPI_COMM_WORLD_RANK", "3"), ("OMPI_COMM_WORLD_LOCAL_RANK", "1"), ("PMIX_RANK", "3"), ("SLURM_NTASKS", "8")));
        // srun --mpi=pmix -n 16 inside an 8-task-per-node allocation: the step's variables, not the job's.
        Assert.AreEqual(new MaeLaunchInfo(MaeLauncher.Slurm, 9, 16, 1),
            Detect(("SLURM_STEP_NUM_TASKS", "16"), ("SLURM_NTASKS", "16"), ("SLURM_PROCID", "9"), ("SLURM_LOCALID", "1"), ("PMIX_RANK", "9")));
        // The batch script itself (sbatch --ntasks=4 runs it once): one process, not rank 0 of 4.
        Assert.AreEqual(new MaeLaunchInfo(MaeLauncher.None, 0, 1, 0), Detect(("SLURM_NTASKS", "4"), ("SLURM_PROCID", "0"), ("SLURM_LOCALID", "0")));
        Assert.AreEqual(new MaeLaunchInfo(MaeLauncher.Pmi, 2, 3, 0), Detect(("PMI_SIZE", "3"), ("PMI_RANK", "2")));
        var pmix = Detect(("PMIX_RANK", "5"), ("LOCAL_RANK", "2"));
        Assert.AreEqual(new MaeLaunchInfo(MaeLauncher.Pmix, 5, 0, 2), pmix);
        Assert.IsTrue(pmix.LooksMultiProcess && pmix.JoinsThroughMpi);
        var torchrun = Detect(("WORLD_SIZE", "8"), ("RANK", "6"), ("LOCAL_RANK", "2"), ("MASTER_ADDR", "10.0.0.1"), ("MASTER_PORT", "29500"));
        Assert.AreEqual(new MaeLaunchInfo(MaeLauncher.Environment, 6, 8, 2), torchrun);
        Assert.IsFalse(torchrun.JoinsThroughMpi);
        Assert.AreEqual(new MaeLaunchInfo(MaeLauncher.None, 0, 1, 0), Detect());
    }

    [TestMethod]
    public void MalformedOrInconsistentVariablesAreNamed()
    {
        var e = Assert.ThrowsExactly<MaeCollectiveException>(() => Detect(("SLURM_STEP_NUM_TASKS", "two"), ("SLURM_PROCID", "0")));
        StringAssert.Contains(e.Message, "SLURM_STEP_NUM_TASKS is 'two'");
        e = Assert.ThrowsExactly<MaeCollectiveException>(() => Detect(("SLURM_STEP_NUM_TASKS", "2"), ("SLURM_PROCID", "2")));
        StringAssert.Contains(e.Message, "rank 2, world size 2");
    }

    /// <summary>srun without PMIx (or an Open MPI built without it) gives every task a world of one: refused, never
    /// "rank 0 of 1" N times. A world that agrees passes.</summary>
    [TestMethod]
    public void AMultiProcessLaunchThatFormedAWorldOfOneIsRefused()
    {
        var srun = new MaeLaunchInfo(MaeLauncher.Slurm, 1, 2, 1);
        srun.CheckFormed(1, 2);
        var e = Assert.ThrowsExactly<MaeCollectiveException>(() => srun.CheckFormed(0, 1));
        StringAssert.Contains(e.Message, "announced rank 1 of 2, but MPI formed rank 0 of 1");
        StringAssert.Contains(e.Message, "srun --mpi=pmix");
        Assert.ThrowsExactly<MaeCollectiveException>(() => new MaeLaunchInfo(MaeLauncher.Slurm, 0, 2, 0).CheckFormed(0, 1));
        new MaeLaunchInfo(MaeLauncher.Pmix, 3, 0, 0).CheckFormed(3, 4);
        Assert.ThrowsExactly<MaeCollectiveException>(() => new MaeLaunchInfo(MaeLauncher.Pmix, 3, 0, 0).CheckFormed(0, 1));
    }

    /// <summary>torchrun's variables (with MASTER_ADDR/MASTER_PORT) cannot bootstrap Open MPI: CPU training under them is
    /// refused naming what to use; a world of one from any launcher is a plain single process. On CUDA they bootstrap NCCL:
    /// without MASTER_ADDR that is refused naming it, and on this machine (no NCCL) the failure names the library.</summary>
    [TestMethod]
    public void TorchrunStyleLaunchIsRefusedNamingMpirunAndSrun()
    {
        var e = Assert.ThrowsExactly<MaeCollectiveException>(() => MaeCollective.FromLaunch(new MaeLaunchInfo(MaeLauncher.Environment, 1, 4, 1), false));
        StringAssert.Contains(e.Message, "MASTER_ADDR/MASTER_PORT");
        StringAssert.Contains(e.Message, "mpirun -np N");
        StringAssert.Contains(e.Message, "srun --mpi=pmix");
        Assert.AreSame(MaeCollective.Single, MaeCollective.FromLaunch(new MaeLaunchInfo(MaeLauncher.Environment, 0, 1, 0), false));
        Assert.AreSame(MaeCollective.Single, MaeCollective.FromLaunch(new MaeLaunchInfo(MaeLauncher.Slurm, 0, 1, 0), true));
        Assert.AreSame(MaeCollective.Single, MaeCollective.FromLaunch(new MaeLaunchInfo(MaeLauncher.None, 0, 1, 0), true));

        var torchrun = new MaeLaunchInfo(MaeLauncher.Environment, 1, 4, 1);
        Assert.IsTrue(MaeCollective.UsesNccl(MaeDevice.Auto, torchrun, cudaAvailable: true));
        Assert.IsFalse(MaeCollective.UsesNccl(MaeDevice.Cpu, torchrun, cudaAvailable: true));
        Assert.IsFalse(MaeCollective.UsesNccl(MaeDevice.Auto, torchrun, cudaAvailable: false));
        var vars = new Dictionary<string, string> { ["MASTER_PORT"] = "29500" };
        e = Assert.ThrowsExactly<MaeCollectiveException>(() => MaeCollective.FromLaunch(torchrun, true, n => vars.GetValueOrDefault(n)));
        StringAssert.Contains(e.Message, "needs MASTER_ADDR");
        vars["MASTER_ADDR"] = "127.0.0.1";
        vars["MASTER_PORT"] = "http";
        e = Assert.ThrowsExactly<MaeCollectiveException>(() => MaeCollective.FromLaunch(torchrun, true, n => vars.GetValueOrDefault(n)));
        StringAssert.Contains(e.Message, "MASTER_PORT is 'http'");
        vars["MASTER_PORT"] = "29500";
        if (!TorchSharp.torch.cuda.is_available())
        {
            e = Assert.ThrowsExactly<MaeCollectiveException>(() => MaeCollective.FromLaunch(torchrun, true, n => vars.GetValueOrDefault(n)));
            Assert.IsTrue(e.Message.Contains("libnccl.so.2 could not be loaded") || e.Message.Contains("NCCL needs a CUDA device"), e.Message);
        }
    }

    static int FreePort()
    {
        var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        probe.Start();
        int port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }

    /// <summary>The torchrun-style bootstrap without a GPU: rank 0 serves the id it made over TCP, three other ranks (threads
    /// here, processes in a job) fetch it, each gets exactly rank 0's bytes; a rank started before rank 0 listens waits
    /// for it. A peer with another world size, or two peers with one rank, are refused on both sides; a rank that never
    /// comes makes rank 0 fail after the timeout naming it; nobody listening makes a rank fail naming the address.</summary>
    [TestMethod]
    public void TorchrunStyleBootstrapHandsRankZerosIdToEveryRankOrFailsNamingWho()
    {
        int port = FreePort();
        var id = Enumerable.Range(0, 128).Select(i => (byte)(i * 7 + 3)).ToArray();
        var timeout = TimeSpan.FromSeconds(20);
        var others = Enumerable.Range(1, 3).Select(r => Task.Run(() => NcclRendezvous.Exchange(r, 4, "localhost", port, () => throw new InvalidOperationException("only rank 0 makes the id"), timeout))).ToList();
        Thread.Sleep(300);   // the others are already trying
        var mine = NcclRendezvous.Exchange(0, 4, "localhost", port, () => id, timeout);
        CollectionAssert.AreEqual(id, mine);
        foreach (var o in others) CollectionAssert.AreEqual(id, o.Result);

        port = FreePort();
        var liar = Task.Run(() => NcclRendezvous.Exchange(1, 3, "127.0.0.1", port, () => id, timeout));
        var e = Assert.ThrowsExactly<MaeCollectiveException>(() => NcclRendezvous.Exchange(0, 2, "127.0.0.1", port, () => id, timeout));
        StringAssert.Contains(e.Message, "rank 1 says WORLD_SIZE is 3, rank 0 has 2");
        var refused = Assert.ThrowsExactly<AggregateException>(() => liar.Wait());
        StringAssert.Contains(refused.InnerException!.Message, "Rank 0 refused rank 1");

        port = FreePort();
        var twice = Enumerable.Range(0, 2).Select(_ => Task.Run(() => { try { NcclRendezvous.Exchange(1, 3, "127.0.0.1", port, () => id, TimeSpan.FromSeconds(5)); } catch (MaeCollectiveException) { } })).ToList();
        e = Assert.ThrowsExactly<MaeCollectiveException>(() => NcclRendezvous.Exchange(0, 3, "127.0.0.1", port, () => id, timeout));
        StringAssert.Contains(e.Message, "rank 1 came twice");
        Task.WaitAll(twice.ToArray());

        port = FreePort();
        e = Assert.ThrowsExactly<MaeCollectiveException>(() => NcclRendezvous.Exchange(0, 3, "127.0.0.1", port, () => id, TimeSpan.FromSeconds(1)));
        StringAssert.Contains(e.Message, "rank(s) 1, 2 never came");
        e = Assert.ThrowsExactly<MaeCollectiveException>(() => NcclRendezvous.Exchange(2, 3, "127.0.0.1", port, () => id, TimeSpan.FromSeconds(1)));
        StringAssert.Contains(e.Message, $"Rank 2 could not fetch NCCL's id from rank 0 at 127.0.0.1:{port}");
    }

    [TestMethod]
    public void EachRankGetsItsOwnGpu()
    {
        Assert.AreEqual(0, MaeLaunchInfo.CudaDevice(5, 1), "one visible GPU (CUDA_VISIBLE_DEVICES per rank): that one");
        Assert.AreEqual(3, MaeLaunchInfo.CudaDevice(3, 8));
        Assert.AreEqual(0, MaeLaunchInfo.CudaDevice(2, 0), "no GPU: index 0 (the device option decides)");
        var e = Assert.ThrowsExactly<MaeCollectiveException>(() => MaeLaunchInfo.CudaDevice(4, 4));
        StringAssert.Contains(e.Message, "at most 4 ranks per machine");
    }

    /// <summary><c>--device auto</c> under a launcher on a CUDA machine all-reduces over NCCL (the MPI transport would
    /// fail at the first CUDA tensor); on the CPU, or without a launcher, MPI / one process.</summary>
    [TestMethod]
    public void AutoDeviceUnderALauncherWithCudaSelectsNccl()
    {
        var mpirun = new MaeLaunchInfo(MaeLauncher.Mpi, 0, 2, 0);
        var srun = new MaeLaunchInfo(MaeLauncher.Slurm, 0, 8, 0);
        var none = new MaeLaunchInfo(MaeLauncher.None, 0, 1, 0);
        Assert.IsTrue(MaeCollective.UsesNccl(MaeDevice.Auto, mpirun, cudaAvailable: true));
        Assert.IsTrue(MaeCollective.UsesNccl(MaeDevice.Auto, srun, cudaAvailable: true));
        Assert.IsTrue(MaeCollective.UsesNccl(MaeDevice.Cuda, srun, cudaAvailable: true));
        Assert.IsFalse(MaeCollective.UsesNccl(MaeDevice.Auto, mpirun, cudaAvailable: false));
        Assert.IsFalse(MaeCollective.UsesNccl(MaeDevice.Cpu, mpirun, cudaAvailable: true));
        Assert.IsFalse(MaeCollective.UsesNccl(MaeDevice.Auto, none, cudaAvailable: true));
    }

    /// <summary>The CUDA runtime is looked for as libcudart.so.12 (PyTorch's CUDA 12 wheels), .so.13, then the
    /// unversioned name; NCCL's "in progress" is not an asynchronous failure.</summary>
    [TestMethod]
    public void CudaRuntimeNamesAreTriedInOrder()
    {
        var tried = new List<string>();
        string? found = NcclNative.FirstLoadable(NcclNative.CudaRuntimes, name => { tried.Add(name); return name == "libcudart.so.13"; });
        Assert.AreEqual("libcudart.so.13", found);
        CollectionAssert.AreEqual(new[] { "libcudart.so.12", "libcudart.so.13" }, tried);
        Assert.IsNull(NcclNative.FirstLoadable(NcclNative.CudaRuntimes, _ => false));
        Assert.IsFalse(NcclNative.IsAsyncFailure(0));
        Assert.IsFalse(NcclNative.IsAsyncFailure(7));   // ncclInProgress
        Assert.IsTrue(NcclNative.IsAsyncFailure(6));    // ncclRemoteError: a peer failed
    }
}
