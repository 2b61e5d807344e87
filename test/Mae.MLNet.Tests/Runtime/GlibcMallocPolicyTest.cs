using Mae.MLNet.Runtime;

namespace Mae.MLNet.Tests;   // not …Tests.Runtime: that would hide Mae.MLNet.Runtime in the other tests

/// <summary>
/// The malloc thresholds set when Mae.MLNet loads (<see cref="GlibcMallocPolicy"/>): when they are set, and that glibc
/// accepts them in this process. Their effect on speed and page faults is measured by <c>--bench allocator</c>
/// (docs/benchmarks.md), not here.
/// </summary>
[TestClass]
public class GlibcMallocPolicyTest
{
    static (string Description, int Tunes) Decide(params (string Name, string Value)[] environment)
    {
        var env = environment.ToDictionary(e => e.Name, e => e.Value);
        int tunes = 0;
        string description = GlibcMallocPolicy.Decide(name => env.GetValueOrDefault(name), () => { tunes++; return true; });
        return (description, tunes);
    }

    [TestMethod]
    public void TunesOnlyWhereTheUserChoseNothing()
    {
        if (!OperatingSystem.IsLinux()) { Assert.Inconclusive("glibc's allocator is Linux's"); return; }
        var (tuned, once) = Decide();
        Assert.AreEqual(1, once);
        StringAssert.Contains(tuned, "mmap threshold 32 MiB, trim threshold 256 MiB");
        // Unrelated tunables and variables change nothing.
        Assert.AreEqual(1, Decide(("GLIBC_TUNABLES", "glibc.pthread.rseq=0"), ("MALLOC_ARENA_MAX", "2")).Tunes);

        var (off, none) = Decide((GlibcMallocPolicy.OptOutVariable, "0"));
        Assert.AreEqual(0, none);
        StringAssert.Contains(off, "MAE_MALLOC_TUNING=0");
        foreach (var variable in new[] { "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_" })
        {
            var (theirs, tunes) = Decide((variable, "1048576"));
            Assert.AreEqual(0, tunes, variable);
            StringAssert.Contains(theirs, $"as set by you ({variable})");
        }
        var (tunable, notTuned) = Decide(("GLIBC_TUNABLES", "glibc.rtld.nns=2:glibc.malloc.trim_threshold=0"));
        Assert.AreEqual(0, notTuned);
        StringAssert.Contains(tunable, "GLIBC_TUNABLES");

        string notGlibc = GlibcMallocPolicy.Decide(_ => null, () => false);
        Assert.AreEqual("malloc defaults (not glibc)", notGlibc);
    }

    [TestMethod]
    public void GlibcAcceptedBothThresholdsInThisProcess()
    {
        if (!OperatingSystem.IsLinux()) { Assert.Inconclusive("glibc's allocator is Linux's"); return; }
        var userSet = GlibcMallocPolicy.UserVariables.Append(GlibcMallocPolicy.OptOutVariable)
            .Where(v => Environment.GetEnvironmentVariable(v) is not null).ToList();
        if (userSet.Count > 0 || Environment.GetEnvironmentVariable("GLIBC_TUNABLES") is not null)
        {
            Assert.Inconclusive($"this test process runs with the user's malloc settings ({string.Join(", ", userSet)})");
            return;
        }
        // mallopt returns 0 for a value glibc refuses (an mmap threshold above its 32 MiB ceiling, for one): then the
        // description says "not glibc" and this fails.
        StringAssert.StartsWith(TorchRuntime.MallocSetting, "glibc malloc keeps freed memory", TorchRuntime.MallocSetting);
    }
}
