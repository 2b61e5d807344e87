using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using System.Runtime.ExceptionServices;
using Google.Protobuf;
using Mae.MLNet.Interop;
using Mae.MLNet.Interop.Onnx;
using Mae.MLNet.Tests.Interop;
using Mae.MLNet.Tests.Training;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet.Tests.MLNet;

/// <summary>
/// Issue 23, model zips: <see cref="MaeModelZip.Verify"/> / <c>LoadVerified</c> must not pass a zip from which ML.NET
/// would load a graph that was not verified, must not allocate what an entry claims, and must never wait on a pipe.
/// Each zip is made here from a tiny saved featurizer (<see cref="HostileFiles.SaveTinyModelZip"/>).
/// </summary>
[TestClass]
public class HostileModelZipTest
{
    const long Bound = 200L << 20;

    sealed record Entry(string Name, byte[] Bytes);

    static List<Entry> Entries(string zip)
    {
        using var archive = ZipFile.OpenRead(zip);
        return archive.Entries.Select(e =>
        {
            using var s = e.Open();
            var ms = new MemoryStream();
            s.CopyTo(ms);
            return new Entry(e.FullName, ms.ToArray());
        }).ToList();
    }

    static string Write(string path, IEnumerable<Entry> entries)
    {
        using var zip = new ZipArchive(File.Create(path), ZipArchiveMode.Create);
        foreach (var e in entries)
        {
            using var s = zip.CreateEntry(e.Name, CompressionLevel.Fastest).Open();
            s.Write(e.Bytes);
        }
        return path;
    }

    static float[] Features(ITransformer model)
    {
        var ml = new MLContext(0);
        var rows = Enumerable.Range(0, 2).Select(i => new HostileFiles.PixelRow { Pixels = Enumerable.Range(0, 768).Select(k => (k * 3 + i) % 11 / 11f).ToArray() });
        var output = model.Transform(ml.Data.LoadFromEnumerable(rows));
        return output.GetColumn<float[]>("Features").SelectMany(v => v).ToArray();
    }

    static MaeModelFileException Refused(string path, params string[] fragments)
    {
        var e = Assert.ThrowsExactly<MaeModelFileException>(() => MaeModelZip.Verify(path));
        Console.WriteLine(e.Message);
        StringAssert.Contains(e.Message, path);
        foreach (var f in fragments) StringAssert.Contains(e.Message, f);
        var load = Assert.ThrowsExactly<MaeModelFileException>(() => new MLContext(0).Model.LoadVerified(path, out _));
        Assert.AreEqual(e.Message, load.Message);
        return e;
    }

    /// <summary>The verified graph first and, under the same name, an edited graph without a digest: the old Verify
    /// passed (one graph verified, the other only "unsigned"), and ML.NET's repository reader keeps the last entry of
    /// a name, so plain <c>Model.Load</c> computes with the edited graph — shown here by its different features. A
    /// second graph of another name without a digest beside the signed one, and one whose name differs only by '\'
    /// for '/' (one entry to ML.NET on Windows), are refused too.</summary>
    [TestMethod]
    public void GraphsMlNetWouldLoadUnverifiedAreRefused()
    {
        using var dir = new TempDir();
        string original = dir.File("model.zip");
        HostileFiles.SaveTinyModelZip(original);
        var entries = Entries(original);
        var graph = entries.Single(e => e.Name.EndsWith("/OnnxModel", StringComparison.Ordinal));
        var edited = HostileFiles.EditedUnsignedGraph(graph.Bytes);

        string duplicate = Write(dir.File("duplicate.zip"), entries.Append(graph with { Bytes = edited }));
        var ml = new MLContext(0);
        float[] honest = Features(ml.Model.Load(original, out _)), loaded = Features(ml.Model.Load(duplicate, out _));
        CollectionAssert.AreNotEqual(honest, loaded, "plain Model.Load computes with the second, unverified graph");
        Refused(duplicate, "two entries are named", graph.Name);

        string beside = Write(dir.File("beside.zip"), entries.Append(new Entry("Model/Extra/OnnxModel", edited)));
        Refused(beside, "carries no digest beside the verified", "Model/Extra/OnnxModel");

        string backslash = Write(dir.File("backslash.zip"), entries.Append(new Entry(graph.Name.Replace('/', '\\'), edited)));
        Refused(backslash, "two entries are named");

        CollectionAssert.AreEqual(new[] { graph.Name }, MaeModelZip.Verify(original).ToArray(), "the honest zip still verifies");
    }

    /// <summary>Entries outside the graphs (the transformer chain, column names, other transformers' parameters): an edit
    /// made with a zip tool, which recomputes the entry's CRC, passes an unsealed zip's check — the documented gap — but
    /// a sealed zip (<see cref="MaeModelZip.Seal"/>) refuses any entry edited, added or removed, naming it, and
    /// <c>requireSeal</c> refuses an unsealed zip. The sealed zip loads and computes what the unsealed one does.</summary>
    [TestMethod]
    public void ASealedZipVerifiesEveryEntryMlNetLoads()
    {
        using var dir = new TempDir();
        string original = dir.File("model.zip"), sealedZip = dir.File("sealed.zip");
        HostileFiles.SaveTinyModelZip(original);
        File.Copy(original, sealedZip);
        MaeModelZip.Seal(sealedZip);
        var ml = new MLContext(0);
        CollectionAssert.AreEqual(Features(ml.Model.LoadVerified(original, out _)), Features(ml.Model.LoadVerified(sealedZip, requireSeal: true, out _)));
        var unsealed = Assert.ThrowsExactly<MaeModelFileException>(() => MaeModelZip.Verify(original, requireSeal: true));
        StringAssert.Contains(unsealed.Message, "carries no seal");
        Assert.ThrowsExactly<MaeModelFileException>(() => ml.Model.LoadVerified(original, requireSeal: true, out _));

        var entries = Entries(sealedZip);
        Assert.AreEqual(Entries(original).Count + 1, entries.Count);
        var target = entries.First(e => !e.Name.EndsWith("OnnxModel", StringComparison.Ordinal) && e.Name != MaeModelZip.SealEntryName && e.Bytes.Length > 0);
        var changed = target.Bytes.ToArray();
        changed[^1] ^= 1;
        var editedEntries = entries.Select(e => e == target ? e with { Bytes = changed } : e).ToList();
        MaeModelZip.Verify(Write(dir.File("edited-unsealed.zip"), editedEntries.Where(e => e.Name != MaeModelZip.SealEntryName)));   // only CRCs: passes
        Refused(Write(dir.File("edited.zip"), editedEntries), $"entry '{target.Name}' differs from its seal");
        Refused(Write(dir.File("added.zip"), entries.Append(new Entry("TransformerChain/Extra/Model.key", [1, 2, 3]))), "'TransformerChain/Extra/Model.key' is not in its seal");
        Refused(Write(dir.File("removed.zip"), entries.Where(e => e != target)), $"entry '{target.Name}' named in its seal is missing");
        Assert.ThrowsExactly<MaeModelFileException>(() => MaeModelZip.Seal(sealedZip));   // once
    }

    /// <summary>A graph entry whose header claims 2 000 000 000 bytes from 2 MB compressed (under deflate's 1 032:1):
    /// Verify allocated the declared size before reading (2 GB). Now it reads in 64 KiB chunks against the real length
    /// and refuses the entry that ends early, within 200 MB. A real bomb (an entry that does inflate far beyond the
    /// zip's size) stops at MaeLoadLimits.MaxCompressionRatio × the file size.</summary>
    [TestMethod]
    public void DeclaredAndInflatedSizesAreNotTrusted()
    {
        if (!PeakMemory.Supported) Assert.Inconclusive("Peak memory is measured through /proc/self/clear_refs (Linux only).");
        using var dir = new TempDir();
        var noise = new byte[2 << 20];
        new Random(1).NextBytes(noise);
        string claims = Write(dir.File("claims.zip"), new[] { new Entry("Model/OnnxModel", noise) });
        var bytes = File.ReadAllBytes(claims);
        // The uncompressed size: offset 22 of the local header, 24 of the central directory header.
        HostileFiles.PatchUInt32(bytes, 0x04034b50, 22, 2_000_000_000);
        HostileFiles.PatchUInt32(bytes, 0x02014b50, 24, 2_000_000_000);
        File.WriteAllBytes(claims, bytes);

        var r = PeakMemory.Measure(() => MaeModelZip.Verify(claims));
        Console.WriteLine($"claims 2 GB: {r.Error?.GetType().Name}, peak RSS +{r.PeakMiB:F1} MiB, managed {r.ManagedMiB:F1} MiB: {r.Error?.Message}");
        Assert.IsInstanceOfType<MaeModelFileException>(r.Error);
        StringAssert.Contains(r.Error.Message, claims);
        Assert.IsLessThan(Bound, r.ManagedAllocated, $"{r.ManagedMiB:F0} MiB allocated");
        Assert.IsLessThan(Bound, r.PeakRssGrowth, $"peak resident set +{r.PeakMiB:F0} MiB");

        // 64 MiB of zeros deflate to about 64 KiB: 1 000 times the file, far over the ratio of 16.
        string bomb = Write(dir.File("bomb.zip"), new[] { new Entry("Model/OnnxModel", new byte[64 << 20]) });
        r = PeakMemory.Measure(() => MaeModelZip.Verify(bomb));
        Console.WriteLine($"bomb: {r.Error?.GetType().Name}, peak RSS +{r.PeakMiB:F1} MiB, managed {r.ManagedMiB:F1} MiB: {r.Error?.Message}");
        Assert.IsInstanceOfType<MaeModelFileException>(r.Error);
        StringAssert.Contains(r.Error.Message, "MaxCompressionRatio");
        Assert.IsLessThan(4L << 20, r.ManagedAllocated, "the entry is streamed, not held");
    }

    /// <summary>A FIFO named like a model zip, a pre-training checkpoint and a weights file: each reader refuses it
    /// with its own exception naming the file, instead of blocking in open() for ever.</summary>
    [TestMethod]
    public void PipesNamedLikeModelFilesAreRefusedNotWaitedOn()
    {
        if (!OperatingSystem.IsLinux()) Assert.Inconclusive("FIFOs are made with mkfifo (Linux only).");
        using var dir = new TempDir();
        var loads = new (string Name, Action<string> Load, Type Expected)[]
        {
            ("model.zip", p => new MLContext(0).Model.LoadVerified(p, out _), typeof(MaeModelFileException)),
            ("checkpoint-0001.maeckpt", p => Mae.MLNet.Pretraining.MaePretrainCheckpoint.LoadModel(p).Dispose(), typeof(Mae.MLNet.Training.MaeTrainingCheckpointException)),
            ("finetune-0001.maeft", p => Mae.MLNet.FineTuning.MaeFineTuneCheckpoint.ReadHeader(p), typeof(Mae.MLNet.Training.MaeTrainingCheckpointException)),
            ("weights.safetensors", p => MaeWeightFile.LoadEncoder(p, HostileFiles.ConfigI).Dispose(), typeof(MaeModelFileException)),
            ("weights.pth", p => MaeWeightFile.LoadEncoder(p, HostileFiles.ConfigI).Dispose(), typeof(MaeModelFileException)),
        };
        foreach (var (name, load, expected) in loads)
        {
            string path = dir.File(name);
            HostileFiles.MakeFifo(path);
            Exception? error = null;
            var thread = new Thread(() => { try { load(path); } catch (Exception e) { error = e; } }) { IsBackground = true };
            thread.Start();
            Assert.IsTrue(thread.Join(TimeSpan.FromSeconds(60)), $"{name}: the reader is blocked on the pipe");
            Console.WriteLine($"{name}: {error?.GetType().Name}: {error?.Message}");
            Assert.IsNotNull(error, name);
            Assert.AreEqual(expected, error.GetType(), $"{name}: {error}");
            StringAssert.Contains(error.Message, path, name);
            StringAssert.Contains(error.Message, "FIFO", name);
        }
    }
}
