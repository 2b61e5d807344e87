using System.Diagnostics;
using System.Globalization;
using Mae.MLNet.Model;
using TorchSharp;
using Mae.MLNet.Runtime;
using static TorchSharp.torch;

namespace Mae.MLNet.Benchmarks;

/// <summary>
/// The official models_mae.py training step in a Python process beside ours (<c>official_train.py</c>): started and
/// warmed up once, then asked for a window of timed steps between our windows, so both sides see the same machine
/// load. Needs a Python with PyTorch and timm, and a folder with the official models_mae.py (not in this repository).
/// </summary>
public sealed class OfficialTraining : IDisposable
{
    readonly Process process;
    public string Label { get; }
    public string Version { get; }
    /// <summary>The OpenMP wait setting the official process ran with.</summary>
    public string OpenMp { get; }
    public List<double> ImagesPerSecond { get; } = new();

    public OfficialTraining(string python, string officialDir, MaeConfig c, int batch, int threads, ScalarType? dtype, Device device, long seed)
    {
        Label = "official " + TrainingBenchmark.Label(dtype);
        var script = Path.Combine(AppContext.BaseDirectory, "official_train.py");
        var psi = new ProcessStartInfo(python)
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = false, UseShellExecute = false,
        };
        foreach (var a in new[]
        {
            script, "--official", officialDir, "--img", $"{c.ImageSize}", "--patch", $"{c.PatchSize}", "--chans", $"{c.InChannels}",
            "--dim", $"{c.EmbedDim}", "--depth", $"{c.Depth}", "--heads", $"{c.NumHeads}", "--dec-dim", $"{c.DecoderEmbedDim}",
            "--dec-depth", $"{c.DecoderDepth}", "--dec-heads", $"{c.DecoderNumHeads}", "--batch", $"{batch}", "--threads", $"{threads}",
            "--dtype", dtype is null ? "fp32" : "bf16", "--device", device.type == DeviceType.CUDA ? "cuda" : "cpu", "--seed", $"{seed}",
        }) psi.ArgumentList.Add(a);
        // The same OpenMP wait setting as ours. Mae.MLNet sets GOMP_SPINCOUNT=1000 with libc's setenv when it loads
        // (Runtime/OpenMpWaitPolicy), which .NET's copy of the environment — what a child process gets — does not
        // see; with libgomp's default spinning the official step ran 4–5× slower on this loaded machine.
        if (!psi.Environment.ContainsKey("GOMP_SPINCOUNT") && !psi.Environment.ContainsKey("OMP_WAIT_POLICY"))
            psi.Environment["GOMP_SPINCOUNT"] = Environment.GetEnvironmentVariable("GOMP_SPINCOUNT") ?? OpenMpSetting();
        OpenMp = psi.Environment.TryGetValue("GOMP_SPINCOUNT", out var spin) ? $"GOMP_SPINCOUNT={spin}" : $"OMP_WAIT_POLICY={psi.Environment["OMP_WAIT_POLICY"]}";
        process = Process.Start(psi) ?? throw new InvalidOperationException($"Could not start {python}.");
        var ready = process.StandardOutput.ReadLine();
        if (ready is null || !ready.StartsWith("ready", StringComparison.Ordinal))
            throw new InvalidOperationException($"The official training script did not start (got '{ready}'); see its error output above.");
        Version = ready["ready ".Length..];
    }

    /// <summary>Ours: "1000" when the library chose GOMP_SPINCOUNT=1000 (see <c>TorchRuntime.OpenMpWaitSetting</c>).</summary>
    static string OpenMpSetting() => Mae.MLNet.Runtime.TorchRuntime.OpenMpWaitSetting.Contains("GOMP_SPINCOUNT=1000") ? "1000" : "300000";

    /// <summary>Runs <paramref name="steps"/> timed official steps; records and returns their img/s.</summary>
    public double RunWindow(int steps)
    {
        process.StandardInput.WriteLine($"run {steps}");
        process.StandardInput.Flush();
        var line = process.StandardOutput.ReadLine() ?? throw new InvalidOperationException("The official training script ended early.");
        double ips = double.Parse(line.Split(' ')[1], CultureInfo.InvariantCulture);
        ImagesPerSecond.Add(ips);
        return ips;
    }

    public void Dispose()
    {
        try
        {
            process.StandardInput.WriteLine("quit");
            process.StandardInput.Flush();
            if (!process.WaitForExit(10000)) process.Kill();
        }
        catch (InvalidOperationException) { }
        catch (IOException) { }
        process.Dispose();
    }
}
