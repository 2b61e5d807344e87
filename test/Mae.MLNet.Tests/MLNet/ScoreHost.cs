using System.Diagnostics;
using System.Globalization;

namespace Mae.MLNet.Tests.MLNet;

/// <summary>Runs test/Mae.MLNet.ScoreHost (references ML.NET + ONNX Runtime only) on a saved model zip in a fresh process.</summary>
internal static class ScoreHost
{
    public sealed record Result(List<(uint PredictedLabel, float[] Vector)> Rows, bool LibTorchLoaded, string[] Transformers);

    public static Result Score(string zip, IReadOnlyList<float[]> rows, string vectorColumn)
    {
        string dir = Path.Combine(Path.GetTempPath(), $"mae-host-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            string input = Path.Combine(dir, "rows.f32"), output = Path.Combine(dir, "out.txt");
            var flat = rows.SelectMany(r => r).ToArray();
            var bytes = new byte[flat.Length * 4];
            Buffer.BlockCopy(flat, 0, bytes, 0, bytes.Length);
            File.WriteAllBytes(input, bytes);

            // test/Mae.MLNet.Tests/bin/<Configuration>/net10.0/ → test/Mae.MLNet.ScoreHost/bin/<Configuration>/net10.0/
            var testBin = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
            string host = Path.Combine(testBin.Parent!.Parent!.Parent!.Parent!.FullName, "Mae.MLNet.ScoreHost", "bin",
                                       testBin.Parent!.Name, testBin.Name, "Mae.MLNet.ScoreHost.dll");
            Assert.IsTrue(File.Exists(host), $"score host not built at {host}");
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in new[] { host, zip, input, rows[0].Length.ToString(CultureInfo.InvariantCulture), output, vectorColumn })
                psi.ArgumentList.Add(a);
            using var process = Process.Start(psi)!;
            string err = process.StandardError.ReadToEnd();
            process.WaitForExit(120_000);
            Assert.AreEqual(0, process.ExitCode, err);

            var lines = File.ReadAllLines(output);
            StringAssert.StartsWith(lines[^2], "libtorch-loaded ");
            StringAssert.StartsWith(lines[^1], "transformers ");
            var scored = lines[..^2].Select(line =>
            {
                var parts = line.Split(' ');
                return (uint.Parse(parts[0], CultureInfo.InvariantCulture),
                        parts[1..].Select(p => float.Parse(p, CultureInfo.InvariantCulture)).ToArray());
            }).ToList();
            return new Result(scored, lines[^2] != "libtorch-loaded no", lines[^1]["transformers ".Length..].Split(','));
        }
        finally { Directory.Delete(dir, true); }
    }
}
