using System.Diagnostics;
using System.Globalization;
using Mae.MLNet.Model;
using Mae.MLNet.Pretraining;
using Mae.MLNet.Runtime;
using Mae.MLNet.Training;
using Mae.MLNet.Input;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Benchmarks;

/// <summary>
/// The NCCL path on a lent GPU, in one short call (samples/Benchmarks/gpu/nccl.sh): a one-rank communicator formed
/// through the torchrun-style bootstrap (rank 0 serves NCCL's id over TCP; no MPI on the GPU machines), its all-reduce,
/// broadcast, host values and barrier checked against closed-form results and timed on a ViT-B-sized gradient, a short
/// CUDA pre-training with the NCCL collective against the single-process one (same losses expected: the mean over one
/// rank is the value itself), then two torchrun-style ranks on the one GPU — which NCCL refuses (two ranks on one
/// device): what is checked there is that the failure is fast and names the cause, never a hang.
/// </summary>
public static class NcclCheck
{
    const string ChildTag = "NCCL-CHILD";

    public static bool Run(TextWriter output, TextWriter log)
    {
        output.WriteLine("## NCCL check (torchrun-style bootstrap, one GPU)");
        output.WriteLine();
        output.WriteLine("| check | result |");
        output.WriteLine("|---|---|");
        bool ok = true;
        void Row(string check, string result, bool pass = true) { output.WriteLine($"| {check} | {result} |"); ok &= pass; }

        var variables = new Dictionary<string, string> { ["MASTER_ADDR"] = "127.0.0.1", ["MASTER_PORT"] = $"{FreePort() - 1}" };
        var clock = Stopwatch.StartNew();
        MaeNcclCollective nccl;
        try { nccl = MaeNcclCollective.CreateFromEnvironment(new MaeLaunchInfo(MaeLauncher.Environment, 0, 1, 0), variables.GetValueOrDefault); }
        catch (Exception e) when (e is MaeCollectiveException or DllNotFoundException or TypeInitializationException)
        {
            Row("1-rank communicator (TCP bootstrap, ncclCommInitRank)", $"**failed**: {e.Message}", pass: false);
            log.WriteLine($"nccl: {e}");
            return false;
        }
        Row("1-rank communicator (TCP bootstrap, ncclCommInitRank)", $"formed on cuda:{nccl.Device} in {clock.Elapsed.TotalMilliseconds:F0} ms");
        var cudaDevice = new Device(DeviceType.CUDA, nccl.Device);

        // A ViT-B/16 MAE's trainable parameters (encoder + decoder) as one flat float32 gradient.
        long count;
        using (var probe = new MaskedAutoencoder(MaeConfig.Preset("vit-b16"))) count = probe.parameters().Where(p => p.requires_grad).Sum(p => p.numel());
        using (var g = new Generator(7))
        using (var values = randn(new[] { count }, generator: g))
        using (var buffer = values.to(cudaDevice))
        {
            nccl.AllReduceMean(buffer);   // warm-up, and the mean over one rank is the value itself
            using (var back = buffer.cpu())
            using (var diff = (back - values).abs().max())
                Row($"all-reduce mean of {count:N0} floats (1 rank)", $"max |result − input| = {diff.item<float>():G3} (expected 0)", diff.item<float>() == 0);
            var times = new List<double>();
            for (int i = 0; i < 10; i++)
            {
                cuda.synchronize();
                var t = Stopwatch.StartNew();
                nccl.AllReduceMean(buffer);
                times.Add(t.Elapsed.TotalMilliseconds);
            }
            times.Sort();
            Row("all-reduce time, ViT-B/16 MAE gradient (444 MB), 1 rank", $"{times[5]:F2} ms median of 10 (a local copy: no link crossed)");
        }
        using (var host = tensor(new[] { 3.5f, -2f }))
        {
            nccl.AllReduceMean(host);
            var v = host.data<float>().ToArray();
            Row("host (CPU) value through NCCL", $"[{v[0]}, {v[1]}] (expected [3.5, -2])", v[0] == 3.5f && v[1] == -2f);
        }
        using (var bytes = arange(0, 256, dtype: ScalarType.Byte, device: cudaDevice))
        {
            nccl.Broadcast(bytes, 0);
            using var cpuBytes = bytes.cpu();
            Row("broadcast of 256 bytes", cpuBytes.data<byte>().ToArray().SequenceEqual(Enumerable.Range(0, 256).Select(i => (byte)i)) ? "unchanged (expected)" : "**changed**");
        }
        nccl.Barrier();
        Row("barrier", "returned");

        // Pre-training on CUDA: the NCCL collective against the single-process one, same seed and data.
        var losses = new List<(string Name, IReadOnlyList<float> Losses, double Seconds)>();
        foreach (var (name, collective) in new (string, IMaeCollective)[] { ("single", MaeCollective.Single), ("nccl", nccl), ("single", MaeCollective.Single) })
        {
            var config = MaeConfig.Preset("tiny32");
            var options = new MaePretrainOptions
            {
                BatchSize = 64, Epochs = 1, WarmupEpochs = 0, LearningRate = 1e-3, Seed = 1, Device = MaeDevice.Cuda, Collective = collective, LogEvery = 10,
            };
            using var model = MaePretrainer.CreateModel(config, options);
            using var g = new Generator(5);
            using var images = rand(new long[] { 64 * 30, config.InChannels, config.ImageSize, config.ImageSize }, generator: g);
            using var source = MaeImageSource.FromTensor(images);
            var t = Stopwatch.StartNew();
            var result = new MaePretrainer(options).Train(model, source);
            losses.Add((name, result.StepLosses, t.Elapsed.TotalSeconds));
        }
        double maxDiff = losses[0].Losses.Zip(losses[1].Losses, (a, b) => Math.Abs((double)a - b)).Max();
        double rerun = losses[0].Losses.Zip(losses[2].Losses, (a, b) => Math.Abs((double)a - b)).Max();
        Row("tiny32 pre-training, 30 steps of 64 on CUDA: NCCL collective vs single process",
            $"max |Δ step loss| = {maxDiff:G3} (single vs single again: {rerun:G3}); {losses[1].Seconds:F2} s vs {losses[0].Seconds:F2} / {losses[2].Seconds:F2} s", maxDiff <= rerun);
        nccl.Dispose();

        // Two torchrun-style ranks on the one GPU: NCCL refuses a device shared by two ranks; the job must end fast, by name.
        int port = FreePort();
        var children = Enumerable.Range(0, 2).Select(rank => StartChild(rank, 2, port)).ToList();
        clock.Restart();
        var outcome = children.Select(c => Finish(c, TimeSpan.FromSeconds(120))).ToList();
        Row("2 torchrun-style ranks sharing one GPU",
            string.Join("; ", outcome.Select((o, r) => $"rank {r}: exit {o.Exit}, {o.Line.Replace('|', '/')}")) + $" (all ended after {clock.Elapsed.TotalSeconds:F1} s)",
            outcome.All(o => o.Exit != 124));
        output.WriteLine();
        return ok;
    }

    /// <summary>One torchrun-style rank (environment as torchrun sets it): forms the job's collective for CUDA, all-reduces
    /// rank + 1 and prints the mean (1.5 for two ranks), or the failure.</summary>
    public static int Child()
    {
        try
        {
            var collective = MaeCollective.ForDevice(MaeDevice.Cuda);
            using var value = full(new long[] { 4 }, collective.Rank + 1f, device: new Device(DeviceType.CUDA, collective is MaeNcclCollective n ? n.Device : 0));
            collective.AllReduceMean(value);
            Console.WriteLine($"{ChildTag} mean {value.cpu().data<float>()[0].ToString(CultureInfo.InvariantCulture)} (expected {(collective.WorldSize + 1) / 2.0})");
            return 0;
        }
        catch (Exception e)
        {
            Console.WriteLine($"{ChildTag} {e.GetType().Name}: {e.Message}");
            return 3;
        }
    }

    static Process StartChild(int rank, int world, int port)
    {
        string self = Environment.ProcessPath!;
        var psi = new ProcessStartInfo(self) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(self) == "dotnet") psi.ArgumentList.Add(typeof(NcclCheck).Assembly.Location);
        foreach (var a in new[] { "--bench", "nccl-child" }) psi.ArgumentList.Add(a);
        psi.Environment["RANK"] = $"{rank}";
        psi.Environment["WORLD_SIZE"] = $"{world}";
        psi.Environment["LOCAL_RANK"] = $"{rank}";
        psi.Environment["MASTER_ADDR"] = "127.0.0.1";
        psi.Environment["MASTER_PORT"] = $"{port - 1}";
        psi.Environment["MAE_COLLECTIVE_TIMEOUT_S"] = "60";
        return Process.Start(psi) ?? throw new InvalidOperationException("could not start a rank");
    }

    static (int Exit, string Line) Finish(Process p, TimeSpan limit)
    {
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(limit)) { p.Kill(entireProcessTree: true); return (124, "still running after the limit: killed"); }
        p.WaitForExit();
        var line = stdout.Result.Split('\n').FirstOrDefault(l => l.StartsWith(ChildTag, StringComparison.Ordinal))?[(ChildTag.Length + 1)..]
            ?? stderr.Result.Split('\n').FirstOrDefault(l => l.Length > 0) ?? "(no output)";
        return (p.ExitCode, line.Trim());
    }

    static int FreePort()
    {
        var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        probe.Start();
        int port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }
}
