using System.Runtime.InteropServices;
using System.CommandLine;
using Mae.Cli.Commands;
using Mae.MLNet.Interop;
using Mae.MLNet.Input;
using Mae.MLNet.Training;

namespace Mae.Cli;

/// <summary>
/// The <c>mae</c> command line: <c>pretrain</c>, <c>finetune</c>, <c>predict</c>, <c>featurize</c>, <c>export</c>, <c>reconstruct</c>.
/// Flags are named like the official scripts' (main_pretrain.py, main_finetune.py) where they mean the same thing.
/// A bad flag or a bad file ends with one line on standard error and a non-zero exit code: 1 for a parse error (with
/// the nearest flag for a typo), 2 for a bad input (a file, a folder, a flag's value), 3 for anything unexpected, 4
/// when the file system refuses (no permission, read-only, disk full), 5 when <c>--resume=require</c> finds no checkpoint,
/// 130 when stopped with Ctrl+C, 143 with SIGTERM.
/// </summary>
public static class MaeCli
{
    public const int ExitUsage = 1, ExitBadInput = 2, ExitFailure = 3, ExitFileSystem = 4, ExitNothingToResume = 5, ExitCancelled = 130, ExitTerminated = 143;

    public static int Run(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken = default)
    {
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var context = new CliContext(output, cancel.Token);
        var root = new RootCommand("mae: masked autoencoders (He et al., CVPR 2022) for .NET — pre-train, fine-tune, predict, featurize, export, reconstruct. " +
                                   "A failure is one line on standard error; exit codes: 0 done, 1 bad flag, 2 bad input (file, folder or value), " +
                                   "3 unexpected error, 4 the file system refused (permission, read-only, full), 5 --resume=require found no checkpoint, 130 / 143 stopped by Ctrl+C / SIGTERM " +
                                   "after writing a checkpoint.")
        {
            PretrainCommand.Create(context), FinetuneCommand.Create(context), FeaturizeCommand.Create(context),
            PredictCommand.Create(context), ExportCommand.Create(context), ReconstructCommand.Create(context),
        };
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var e in parse.Errors) error.WriteLine($"mae: {e.Message}");
            foreach (var suggestion in CliFlags.Suggestions(parse)) error.WriteLine($"mae: {suggestion}");
            error.WriteLine("Run 'mae --help' (or 'mae <command> --help') for the options.");
            return ExitUsage;
        }
        // The first Ctrl+C asks the running command to stop at its next step boundary; a second one ends the process.
        // SIGTERM (what schedulers and `kill` send before SIGKILL) stops the same way, exit code 143.
        bool terminated = false;
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            if (cancel.IsCancellationRequested) return;
            e.Cancel = true;
            error.WriteLine("mae: stopping at the next step boundary (Ctrl+C again to abort at once)");
            cancel.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, signal =>
        {
            if (cancel.IsCancellationRequested) return;   // a second SIGTERM ends the process
            signal.Cancel = true;
            terminated = true;
            error.WriteLine("mae: SIGTERM: stopping at the next step boundary");
            cancel.Cancel();
        });
        try
        {
            return parse.Invoke(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false }) is int code
                ? code : 0;
        }
        catch (Exception ex) when (Unwrap(ex) is OperationCanceledException stopped)
        {
            // Training names the checkpoint it wrote at the stop ("Training stopped at epoch …; checkpoint written: …").
            error.WriteLine(stopped.Message.StartsWith("Training stopped", StringComparison.Ordinal)
                ? $"mae: {stopped.Message} Run the same command with --resume to continue from there."
                : "mae: stopped before the end; files already written are complete (a run with checkpoints continues from the latest with --resume).");
            return terminated ? ExitTerminated : ExitCancelled;
        }
        catch (Exception ex) when (Unwrap(ex) is Mae.MLNet.Input.MaeImageFileException { InnerException: UnauthorizedAccessException })
        {
            // An image or sub-folder the user may not read: the file system's refusal, as documented (exit code 4).
            error.WriteLine($"mae: {CliFlags.OneLine(Unwrap(ex))}");
            EndOtherRanks(Unwrap(ex).Message);
            return ExitFileSystem;
        }
        catch (Exception ex) when (Unwrap(ex) is MaeRunFolderException { Reason: MaeRunFolderException.Problem.NothingToResume })
        {
            error.WriteLine($"mae: {CliFlags.OneLine(Unwrap(ex))}");
            EndOtherRanks(Unwrap(ex).Message);
            return ExitNothingToResume;
        }
        catch (Exception ex) when (Unwrap(ex) is CliException or ArgumentException or InvalidDataException or FileNotFoundException
                                   or DirectoryNotFoundException or MaeModelFileException or Mae.MLNet.Training.MaeTrainingCheckpointException
                                   or Mae.MLNet.Input.MaeImageFileException or InvalidOperationException or NotSupportedException
                                   or MaeRunFolderException)
        {
            error.WriteLine($"mae: {CliFlags.OneLine(Unwrap(ex))}");
            EndOtherRanks(Unwrap(ex).Message);
            return ExitBadInput;
        }
        catch (Exception ex) when (Unwrap(ex) is IOException or UnauthorizedAccessException)
        {
            // The file system's own refusal (permission, read-only, full disk, a vanished file): its message names the path.
            error.WriteLine($"mae: {CliFlags.OneLine(Unwrap(ex))}");
            EndOtherRanks(Unwrap(ex).Message);
            return ExitFileSystem;
        }
        catch (Exception ex)
        {
            error.WriteLine($"mae: unexpected error: {Unwrap(ex)}");
            EndOtherRanks(Unwrap(ex).Message);
            return ExitFailure;
        }
        finally { Console.CancelKeyPress -= onCancel; }
    }

    /// <summary>In a data-parallel job (MPI set up with more than one rank) a command that fails on this rank ends every
    /// rank at once (<c>MPI_Abort</c>): the others might otherwise wait for it in a collective until the watchdog's
    /// timeout. The training engine does the same for failures inside training; this covers the rest of the command.</summary>
    static void EndOtherRanks(string message)
    {
        if (Mae.MLNet.Training.MaeCollective.Joined is { WorldSize: > 1 } job) job.Abort(message);
    }

    /// <summary>The exception to report: the single inner one of an aggregate, and the library's own exception (a bad
    /// file, a stop) where ML.NET wrapped it in its own (e.g. "Splitter/consolidator worker encountered exception").</summary>
    static Exception Unwrap(Exception ex)
    {
        if (ex is AggregateException { InnerExceptions.Count: 1 } a) return Unwrap(a.InnerExceptions[0]);
        for (var inner = ex.InnerException; inner is not null; inner = inner.InnerException)
            if (inner is Mae.MLNet.Input.MaeImageFileException or MaeModelFileException or Mae.MLNet.Training.MaeTrainingCheckpointException
                or CliException or OperationCanceledException)
                return inner;
        return ex;
    }
}
