using System.Diagnostics;
using Mae.MLNet.Tests.Training;
using Mae.MLNet.TrainHost;

namespace Mae.MLNet.Tests.Input;

/// <summary>
/// Pre-training from a folder of JPEGs in a child process, killed with SIGKILL mid-epoch and resumed with another
/// worker count: the losses equal an uninterrupted run's (1 worker) bit for bit — the data plan, not thread timing,
/// decides every batch.
/// </summary>
[TestClass]
public class FolderKillResumeTest
{
    static string HostDll => Path.Combine(AppContext.BaseDirectory, "Mae.MLNet.TrainHost.dll");

    static Process Start(string dir, string output, bool resume, int delayMs, string folder, int workers)
    {
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (string.IsNullOrEmpty(dotnet) || !File.Exists(dotnet)) dotnet = "dotnet";
        var psi = new ProcessStartInfo(dotnet) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { HostDll, dir, "3", "24", output, resume ? "resume" : "fresh", delayMs.ToString(System.Globalization.CultureInfo.InvariantCulture),
                     folder, workers.ToString(System.Globalization.CultureInfo.InvariantCulture) })
            psi.ArgumentList.Add(a);
        return Process.Start(psi) ?? throw new InvalidOperationException("could not start the training host");
    }

    static (int ExitCode, string Stdout, string Stderr) RunToEnd(string dir, string output, bool resume, string folder, int workers)
    {
        using var p = Start(dir, output, resume, 0, folder, workers);
        var err = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(120_000)) { p.Kill(); Assert.Fail("training host timed out"); }
        return (p.ExitCode, stdout, err.Result);
    }

    [TestMethod]
    public void FolderSourceKilledAndResumedWithOtherWorkerCountsMatchesAnUninterruptedRun()
    {
        Assert.IsTrue(File.Exists(HostDll), $"the training host was not built next to the tests: {HostDll}");
        using var dir = new TempDir();
        string images = dir.File("images");
        InputTestUtil.WriteJpegs(images, 24, minSide: 20, maxSide: 60);

        var straight = RunToEnd(dir.File("straight"), dir.File("straight.txt"), false, images, workers: 1);
        Assert.AreEqual(0, straight.ExitCode, straight.Stderr);
        var expected = TinyRun.ParseLosses(File.ReadAllText(dir.File("straight.txt")));
        Assert.AreEqual(18, expected.Length); // 3 epochs × 24 images / batch 4

        string killedDir = dir.File("killed");
        using (var child = Start(killedDir, dir.File("killed.txt"), false, 40, images, workers: 3))
        {
            _ = child.StandardError.ReadToEndAsync();
            string? line;
            bool killed = false;
            while ((line = child.StandardOutput.ReadLine()) is not null)
                if (line == "STEP 1 2")
                {
                    child.Kill();
                    killed = true;
                    break;
                }
            Assert.IsTrue(killed, "the child finished before it could be killed");
            Assert.IsTrue(child.WaitForExit(30_000));
        }
        Assert.IsTrue(File.Exists(Path.Combine(killedDir, "checkpoint-0001.maeckpt")));
        Assert.IsFalse(File.Exists(Path.Combine(killedDir, "checkpoint-0002.maeckpt")), "the kill must land mid-epoch");

        var resumed = RunToEnd(killedDir, dir.File("resumed.txt"), true, images, workers: 2);
        Assert.AreEqual(0, resumed.ExitCode, resumed.Stderr);
        StringAssert.Contains(resumed.Stdout, "checkpoint-0001.maeckpt");
        CollectionAssert.AreEqual(expected, TinyRun.ParseLosses(File.ReadAllText(dir.File("resumed.txt"))));
    }
}
