import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ProjectsModule } from '../projects/projects.module';
import { MachinesModule } from '../machines/machines.module';
import { UsersModule } from '../users/users.module';
import { AgentDownloadsService } from './agent-downloads.service';
import { AgentFileGrants } from './agent-file-grants';
import { AgentFilesController } from './agent-files.controller';
import { BlobStore } from './blob-store';
import { FileIngestService } from './file-ingest.service';
import { FileReferences } from './file-references';
import { FileEntity, FileUploadEntity } from './file.entity';
import { ImageIndexEntity } from './image-index.entity';
import { ImageIndexService } from './image-index.service';
import { FilesController, UploadsController } from './files.controller';
import { FilesService } from './files.service';
import { ResumableUploadsService } from './resumable-uploads.service';

/**
 * The file store of each project. Other features use FilesService (agents'
 * downloads: contentForProject) and register what keeps a file in use with
 * FileReferences, and which machine may download which file with
 * AgentFileGrants; deliveries index image tarballs with ImageIndexService.
 */
@Module({
  imports: [TypeOrmModule.forFeature([FileEntity, FileUploadEntity, ImageIndexEntity]), ProjectsModule, UsersModule, MachinesModule],
  controllers: [FilesController, UploadsController, AgentFilesController],
  providers: [BlobStore, FilesService, FileIngestService, ResumableUploadsService, FileReferences, AgentFileGrants, AgentDownloadsService, ImageIndexService],
  exports: [FilesService, FileReferences, AgentFileGrants, ImageIndexService],
})
export class FilesModule {}
