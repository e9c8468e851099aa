import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ProjectsModule } from '../projects/projects.module';
import { UsersModule } from '../users/users.module';
import { BlobStore } from './blob-store';
import { FileIngestService } from './file-ingest.service';
import { FileReferences } from './file-references';
import { FileEntity, FileUploadEntity } from './file.entity';
import { FilesController, UploadsController } from './files.controller';
import { FilesService } from './files.service';
import { ResumableUploadsService } from './resumable-uploads.service';

/**
 * The file store of each project. Other features use FilesService (agents'
 * downloads: contentForProject) and register what keeps a file in use with
 * FileReferences.
 */
@Module({
  imports: [TypeOrmModule.forFeature([FileEntity, FileUploadEntity]), ProjectsModule, UsersModule],
  controllers: [FilesController, UploadsController],
  providers: [BlobStore, FilesService, FileIngestService, ResumableUploadsService, FileReferences],
  exports: [FilesService, FileReferences],
})
export class FilesModule {}
