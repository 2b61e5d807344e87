// Proves that a project consuming the Mae.MLNet NuGet package gets a working TorchSharp (native libtorch loads,
// on Debian 12 too, through the package's buildTransitive fix), a working ML.NET featurizer and SkiaSharp PNG output.
using Mae.MLNet;
using Mae.MLNet.Model;
using Mae.MLNet.Visualization;
using Microsoft.ML;
using Microsoft.ML.Data;
using static TorchSharp.torch;

int failures = 0;
void Check(bool ok, string what)
{
    Console.WriteLine($"{(ok ? "ok  " : "FAIL")} {what}");
    if (!ok) failures++;
}

// The package itself (path from .ci/package-consumer.sh): README, licence, library and the native fix for direct and
// transitive consumers.
if (Environment.GetEnvironmentVariable("MAE_NUPKG") is { Length: > 0 } nupkg)
{
    using var zip = System.IO.Compression.ZipFile.OpenRead(nupkg);
    var entries = zip.Entries.Select(e => e.FullName).ToHashSet();
    foreach (var f in new[] { "README.md", "LICENSE", "lib/net10.0/Mae.MLNet.dll", "build/Mae.MLNet.targets", "build/MaeWeakenGlibcxxRequirement.cs",
                              "buildTransitive/Mae.MLNet.targets", "buildTransitive/MaeWeakenGlibcxxRequirement.cs" })
        Check(entries.Contains(f), $"package contains {f}");
    using var nuspec = new StreamReader(zip.GetEntry("Mae.MLNet.nuspec")!.Open());
    string spec = nuspec.ReadToEnd();
    Check(spec.Contains("<license type=\"expression\">MIT</license>"), "nuspec declares the MIT licence");
    Check(spec.Contains("id=\"TorchSharp\"") && !spec.Contains("libtorch-") && !spec.Contains("TorchSharp-cuda"),
        "the package depends on TorchSharp, not on a libtorch backend (the application picks one)");
}

if (args is ["--no-backend"])
{
    // Built without a libtorch package: the first model must fail with a message that says what to add.
    try { using var _ = new MaeEncoder(new MaeConfig { ImageSize = 16, PatchSize = 4, EmbedDim = 8, Depth = 1, NumHeads = 2 }); }
    catch (Exception e)
    {
        Console.WriteLine($"{e.GetType().Name}: {e.Message}");
        return e.Message.Contains("libtorch-cpu") ? 0 : 1;
    }
    Console.WriteLine("FAIL a model was built without any libtorch backend");
    return 1;
}

random.manual_seed(0);
var config = MaeConfig.Tiny32 with { Depth = 2, DecoderDepth = 1 };
using var mae = new MaskedAutoencoder(config);
using var images = rand(4, 3, 32, 32);
var (loss, pred, mask) = mae.Forward(images, maskRatio: 0.75);
float lossValue = loss.item<float>();
Check(float.IsFinite(lossValue) && lossValue > 0, $"MaskedAutoencoder forward pass on the CPU: loss {lossValue:F4}");
Check(pred.shape.SequenceEqual(new long[] { 4, config.NumPatches, config.PatchDim }), $"prediction shape [{string.Join(", ", pred.shape)}]");
Check(mask.sum().item<float>() == 4 * (config.NumPatches - MaskedAutoencoder.LenKeep(config.NumPatches, 0.75)), $"mask removes {mask.sum().item<float>()} of {4 * config.NumPatches} patches");
loss.backward();
Check(mae.parameters().All(p => !p.requires_grad || p.grad is not null), "backward pass reaches every trainable parameter");

// ML.NET: the featurizer over a 4-row view.
var ml = new MLContext(seed: 0);
var rows = Enumerable.Range(0, 4).Select(i => new Row { Pixels = images[i].flatten().data<float>().ToArray() }).ToArray();
var features = ml.Transforms.MaeFeaturize("Features", "Pixels", mae.Encoder).Fit(ml.Data.LoadFromEnumerable(rows)).Transform(ml.Data.LoadFromEnumerable(rows));
var first = features.GetColumn<float[]>("Features").ToArray();
Check(first.Length == 4 && first.All(f => f.Length == config.EmbedDim && f.All(float.IsFinite)), $"MaeFeaturize gives 4 × {config.EmbedDim} finite features");

// SkiaSharp: a reconstruction picture.
string png = Path.Combine(Path.GetTempPath(), $"mae-consumer-{Environment.ProcessId}.png");
using (var result = MaeReconstruction.Compute(mae, images, 0.75))
    ReconstructionGrid.SavePng(png, result, new[] { 0f, 0f, 0f }, new[] { 1f, 1f, 1f });
var header = File.ReadAllBytes(png).Take(4).ToArray();
Check(header.SequenceEqual(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }), $"reconstruction grid PNG written ({new FileInfo(png).Length} bytes)");
File.Delete(png);

Console.WriteLine(failures == 0 ? "package consumer: all checks passed" : $"package consumer: {failures} check(s) failed");
return failures == 0 ? 0 : 1;

sealed class Row
{
    [VectorType(3 * 32 * 32)] public float[] Pixels { get; set; } = Array.Empty<float>();
}
