using System.Diagnostics;
using Mae.MLNet.Input;
using Mae.MLNet.Pretraining;
using Mae.MLNet.Training;
using Mae.MLNet.TrainHost;

namespace Mae.MLNet.Tests.Training;

/// <summary>
/// Issue 23, run folders: a run holds its folder's <see cref="MaeRunFolderLock"/>, so a second run on the folder is
/// refused naming the folder and the holder's process id, and a starting run never deletes the temporaries of a live
/// one. The other process is util-linux <c>flock</c> holding the lock file, as a live run does (Linux only).
/// </summary>
[TestClass]
public class RunFolderLockTest
{
    /// <summary>Holds an exclusive flock on the folder's lock file (whose first line names <c>pid</c>) until disposed.</summary>
    sealed class OtherRun : IDisposable
    {
        readonly Process process;
        public int Pid => process.Id;

        public OtherRun(string folder)
        {
            if (!OperatingSystem.IsLinux()) Assert.Inconclusive("the other run is util-linux flock (Linux only).");
            string file = Path.Combine(folder, MaeRunFolderLock.FileName);
            // flock opens the file, takes LOCK_EX and runs the command (-o: without the locked descriptor, so the lock
            // goes with flock itself); the command writes the pid line and waits.
            process = Process.Start(new ProcessStartInfo("flock", new[] { "-x", "-o", file, "sh", "-c", $"echo pid $$ > '{file}'; echo host elsewhere >> '{file}'; echo locked; exec sleep 600" })
            {
                UseShellExecute = false, RedirectStandardOutput = true,
            })!;
            Assert.AreEqual("locked", process.StandardOutput.ReadLine(), "flock did not start");
        }

        public void Dispose()
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            process.WaitForExit();
            process.Dispose();
        }
    }

    [TestMethod]
    public void ASecondRunIsRefusedNamingTheFolderAndTheHolder()
    {
        using var dir = new TempDir();
        using (var other = new OtherRun(dir.Path))
        {
            var e = Assert.ThrowsExactly<MaeRunFolderException>(() => MaeRunFolderLock.Acquire(dir.Path));
            Console.WriteLine(e.Message);
            Assert.AreEqual(MaeRunFolderException.Problem.InUse, e.Reason);
            StringAssert.Contains(e.Message, dir.Path);
            Assert.IsNotNull(e.HolderProcessId);
            // The pid line is written by the shell flock runs (exec'd into sleep): a live process.
            Assert.IsFalse(Process.GetProcessById(e.HolderProcessId.Value).HasExited);
            StringAssert.Contains(e.Message, $"process {e.HolderProcessId}");
            StringAssert.Contains(e.Message, "elsewhere");
        }
        // The holder is gone (killed): the OS released its lock, and the folder is free again.
        MaeRunFolderLock.Acquire(dir.Path).Dispose();
        // The file stays (deleting a lock file races with a run opening it); it names its last holder.
        StringAssert.Contains(File.ReadAllText(Path.Combine(dir.Path, MaeRunFolderLock.FileName)), $"pid {Environment.ProcessId}");
    }

    [TestMethod]
    public void NestingOnOneThreadSharesTheLockAndAnotherThreadIsRefused()
    {
        using var dir = new TempDir();
        using (var outer = MaeRunFolderLock.Acquire(dir.Path))
        {
            using (var inner = MaeRunFolderLock.Acquire(Path.Combine(dir.Path, ".")))   // the same folder spelled otherwise
            {
            }
            MaeRunFolderException? e = null;
            var t = new Thread(() => e = Assert.ThrowsExactly<MaeRunFolderException>(() => MaeRunFolderLock.Acquire(dir.Path)));
            t.Start();
            t.Join();
            Assert.IsNotNull(e);
            Assert.AreEqual(Environment.ProcessId, e.HolderProcessId);
            Assert.AreEqual(MaeRunFolderException.Problem.InUse, e.Reason);
        }
        Exception? after = null;
        var free = new Thread(() => { try { MaeRunFolderLock.Acquire(dir.Path).Dispose(); } catch (Exception x) { after = x; } });
        free.Start();
        free.Join();
        Assert.IsNull(after, "released when the outermost holder is disposed");
    }

    /// <summary>A live run's checkpoint temporary (its writer holds the folder) must survive another run starting on
    /// the folder — the old start deleted every "stale" temporary, including one being written — and that run is
    /// refused. Once the holder is gone, the next run takes the folder and cleans the leftover.</summary>
    [TestMethod]
    public void AStartingRunNeverDeletesALiveRunsTemporaries()
    {
        using var dir = new TempDir();
        string temporary = Path.Combine(dir.Path, ".checkpoint-0002.maeckpt.tmp-424242-0123456789abcdef");
        File.WriteAllBytes(temporary, new byte[100]);
        MaePretrainResult Train()
        {
            using var source = MaeImageSource.FromArrays(TinyRun.Images(8), 3, 16, 16);
            using var model = MaePretrainer.CreateModel(TinyRun.Config, TinyRun.Options(1, dir.Path));
            return new MaePretrainer(TinyRun.Options(1, dir.Path)).Train(model, source);
        }
        using (new OtherRun(dir.Path))
        {
            var e = Assert.ThrowsExactly<MaeRunFolderException>(() => Train());
            Assert.AreEqual(MaeRunFolderException.Problem.InUse, e.Reason);
            StringAssert.Contains(e.Message, dir.Path);
            Assert.IsTrue(File.Exists(temporary), "the live run's temporary was deleted");
            Assert.IsFalse(File.Exists(MaePretrainCheckpoint.PathFor(dir.Path, 1)), "the refused run wrote into the folder");
        }
        Train();
        Assert.IsFalse(File.Exists(temporary), "a leftover of a run that is gone is cleaned up");
        Assert.IsTrue(File.Exists(MaePretrainCheckpoint.PathFor(dir.Path, 1)));
    }
}
