using Mae.MLNet.Runtime;

namespace Mae.MLNet.Tests;   // not …Tests.Runtime: that would hide Mae.MLNet.Runtime in the other tests

/// <summary>
/// The one-bit ELF edit shared by the build-time fix (build/Mae.MLNet.targets) and the run-time one
/// (<c>LibTorchSharpLoader</c>), on TorchSharp's own libLibTorchSharp.so from the NuGet cache (read only).
/// </summary>
[TestClass]
public class GlibcxxRequirementTest
{
    static string? CachedLibrary()
    {
        string packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p
            ? p : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        string path = Path.Combine(packages, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        return File.Exists(path) ? path : null;
    }

    [TestMethod]
    public void MarksExactlyTheOneRequirementWeakOnce()
    {
        if (CachedLibrary() is not { } shipped) { Assert.Inconclusive("TorchSharp 0.107's linux-x64 package is not in the NuGet cache"); return; }
        byte[] original = File.ReadAllBytes(shipped);
        byte[] edited = (byte[])original.Clone();
        Assert.AreEqual(GlibcxxRequirement.Outcome.Changed, GlibcxxRequirement.Weaken(edited), "the shipped file asks for GLIBCXX_3.4.32 strongly");

        // One byte differs: the low byte of vna_flags, which gains VER_FLG_WEAK (0x2) and nothing else.
        var differing = Enumerable.Range(0, original.Length).Where(i => original[i] != edited[i]).ToArray();
        Assert.AreEqual(1, differing.Length, string.Join(", ", differing));
        Assert.AreEqual(0x2, original[differing[0]] ^ edited[differing[0]]);

        byte[] again = (byte[])edited.Clone();
        Assert.AreEqual(GlibcxxRequirement.Outcome.AlreadyWeak, GlibcxxRequirement.Weaken(again));
        CollectionAssert.AreEqual(edited, again);

        // Where this host lacks the version, the build fixed the test output's copy: the same bytes.
        string? output = Directory.GetFiles(AppContext.BaseDirectory, "libLibTorchSharp.so", SearchOption.AllDirectories).FirstOrDefault();
        if (!GlibcxxRequirement.HostHasVersion() && output is not null)
            CollectionAssert.AreEqual(edited, File.ReadAllBytes(output), "the build output's copy differs from the run-time edit");
    }

    [TestMethod]
    public void RefusesWhatIsNotA64BitElfFile()
    {
        Assert.ThrowsExactly<InvalidDataException>(() => GlibcxxRequirement.Weaken(new byte[100]));
        var elf32 = new byte[100];
        elf32[0] = 0x7f; elf32[1] = (byte)'E'; elf32[2] = (byte)'L'; elf32[3] = (byte)'F'; elf32[4] = 1; elf32[5] = 1;
        Assert.ThrowsExactly<InvalidDataException>(() => GlibcxxRequirement.Weaken(elf32));
    }
}
