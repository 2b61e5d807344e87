using System.Diagnostics;
using Mae.MLNet.TrainHost;

namespace Mae.MLNet.Tests.Training;

/// <summary>
/// A child process trains with a checkpoint after every epoch; the test kills it with SIGKILL in the middle of an
/// epoch, restarts it with resume, and the losses must equal an uninterrupted child run's bit for bit.
/// </summary>
[TestClass]
public class KillResumeTest
{
    static string HostDll => Path.Combine(AppContext.BaseDirectory, "Mae.MLNet.TrainHost.dll");

    static Process Start(string dir, string output, bool resume, int delayMs)
    {
        var dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        if (string.IsNullOrEmpty(dotnet) || !File.Exists(dotnet)) dotnet = "dotnet";
        var psi = new ProcessStartInfo(dotnet)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { HostDll, dir, "3", "24", output, resume ? "resume" : "fresh", delayMs.ToString(System.Globalization.CultureInfo.InvariantCulture) })
            psi.ArgumentList.Add(a);
        return Process.Start(psi) ?? throw new InvalidOperationException("could not start the training host");
    }

    static (int exitCode, string stdout, string stderr) RunToEnd(string dir, string output, bool resume)
    {
        using var p = Start(dir, output, resume, 0);
        var err = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        if (!p.WaitForExit(120_000)) { p.Kill(); Assert.Fail("training host timed out"); }
        return (p.ExitCode, stdout, err.Result);
    }

    [TestMethod]
    public void KilledMidEpochAndResumedMatchesAnUninterruptedRun()
    {
        Assert.IsTrue(File.Exists(HostDll), $"the training host was not built next to the tests: {HostDll}");
        using var dir = new TempDir();
        string straightDir = dir.File("straight"), killedDir = dir.File("killed");

        var straight = RunToEnd(straightDir, dir.File("straight.txt"), resume: false);
        Assert.AreEqual(0, straight.exitCode, straight.stderr);
        var expected = TinyRun.ParseLosses(File.ReadAllText(dir.File("straight.txt")));
        Assert.AreEqual(18, expected.Length); // 3 epochs × 24 images / batch 4

        // Slow the child down (the delay sits in its progress callback, outside the numerics) and kill it at
        // epoch 1, step 2: checkpoint-0001 exists, checkpoint-0002 must not.
        using (var child = Start(killedDir, dir.File("killed.txt"), resume: false, delayMs: 40))
        {
            _ = child.StandardError.ReadToEndAsync();
            string? line;
            bool killed = false;
            while ((line = child.StandardOutput.ReadLine()) is not null)
            {
                if (line == "STEP 1 2")
                {
                    child.Kill(); // SIGKILL on Unix
                    killed = true;
                    break;
                }
            }
            Assert.IsTrue(killed, "the child finished before it could be killed");
            Assert.IsTrue(child.WaitForExit(30_000));
            Assert.AreNotEqual(0, child.ExitCode);
        }
        Assert.IsTrue(File.Exists(Path.Combine(killedDir, "checkpoint-0001.maeckpt")));
        Assert.IsFalse(File.Exists(Path.Combine(killedDir, "checkpoint-0002.maeckpt")), "the kill must land mid-epoch");
        Assert.IsFalse(File.Exists(dir.File("killed.txt")));

        var resumed = RunToEnd(killedDir, dir.File("resumed.txt"), resume: true);
        Assert.AreEqual(0, resumed.exitCode, resumed.stderr);
        StringAssert.Contains(resumed.stdout, "resumed-from=");
        StringAssert.Contains(resumed.stdout, "checkpoint-0001.maeckpt");
        var actual = TinyRun.ParseLosses(File.ReadAllText(dir.File("resumed.txt")));
        CollectionAssert.AreEqual(expected, actual);
    }
}
